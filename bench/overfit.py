"""Overfit test on CPU: does MedVersa training learn text, boxes and masks? (issue 19)

Trains the learnable tiny configuration (``MedVersaConfig.tiny(learnable=True)``) with :func:`engine.training.train`
on a handful of real samples from ``../shared/data``: chest radiographs with real IU reports (report generation),
HAM10000 dermoscopy images with their lesion masks (2D segmentation), a lesion's box (the extent of its real mask;
detection) and the TotalSegmentator CT with its liver mask (3D segmentation). Augmentation is off, instructions
are re-drawn from Table 5 every iteration as in training. Then, per task:

- the teacher-forced loss before and after training (the same batches, eval mode);
- greedy generation (:meth:`engine.inference.MedVersa.generate`, a Table 5 instruction), and from it the report's
  character similarity to its target (``difflib`` ratio; 1.0 = exact), the IoU of the generated box, the Dice of
  the generated 2D mask and 3D mask against the real masks on the input's own grid.

Targets (printed with each figure): similarity >= 0.95, IoU >= 0.7, Dice >= 0.9 (2D) and >= 0.8 (3D).

Usage: ``python bench/overfit.py [--steps 600] [--threads 2] [--reports 2] [--json out.json]``; exit status 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN, MedVersaConfig  # noqa: E402
from engine.data.adapters.common import mask_box, report_answer  # noqa: E402
from engine.data.collate import collate  # noqa: E402
from engine.data.loading import example_rng, load_example  # noqa: E402
from engine.data.manifest import write_manifest  # noqa: E402
from engine.data.schema import BoxTarget, ImageRef, MaskTarget, Sample  # noqa: E402
from engine.evaluation.geometry import box_iou, dice  # noqa: E402
from engine.inference import MedVersa  # noqa: E402
from engine.processing import Task, instruction, load_volume  # noqa: E402
from engine.tiny import write_tiny_checkpoint  # noqa: E402
from engine.training import train  # noqa: E402
from engine.training_config import TrainConfig  # noqa: E402
from tests.engine.conftest import iu_reports  # noqa: E402

SHARED = (ROOT.parent / "shared" / "data").resolve()
TARGETS = {"similarity": 0.95, "iou": 0.7, "dice_2d": 0.9, "dice_3d": 0.8}
CHEST_IMAGES = ("cxr_png/00000001_000.png", "dicom/cxr/nih_siim_cr_jpegbaseline.dcm")
LESIONS = ("ISIC_0024311", "ISIC_0027001")
DETECTION_LESION = "ISIC_0027287"
LIVER = 5  # TotalSegmentator v1 label value


TASKS = ("report", "seg2d", "detection", "seg3d")


def overfit_samples(shared: Path, reports: int = 2, tasks: tuple[str, ...] = TASKS) -> list[Sample]:
    """The real samples of ``tasks``: ``reports`` chest radiographs (1 or 2) with IU reports, two lesions with
    masks, one lesion box, the CT with its liver mask. Instructions are stored with their fields, so training
    re-draws them."""
    samples = []
    for i, report in enumerate(iu_reports(shared, reports)):
        samples.append(Sample(
            f"report-{i}", "iu-xray", Task.REPORT.value, "chest_xray",
            (ImageRef(str(shared / CHEST_IMAGES[i]), "chest_xray"),), instruction(Task.REPORT),
            report_answer(report["FINDINGS"], report["IMPRESSION"]), instruction_fields={"image": "<img0>"}))
    for name in LESIONS:
        samples.append(Sample(
            f"seg-{name}", "ham10000", Task.SEGMENTATION.value, "dermoscopy",
            (ImageRef(str(shared / "derm" / "images" / f"{name}.jpg"), "dermoscopy"),),
            instruction(Task.SEGMENTATION, target="lesion"), f"The segmentation mask of lesion is {SEG2D_TOKEN}.",
            masks=(MaskTarget(str(shared / "derm" / "masks" / f"{name}.png"), "lesion"),),
            instruction_fields={"image": "<img0>", "target": "lesion"}))
    mask = np.asarray(Image.open(shared / "derm" / "masks" / f"{DETECTION_LESION}.png").convert("L")) > 0
    samples.append(Sample(
        f"det-{DETECTION_LESION}", "ham10000", Task.DETECTION.value, "dermoscopy",
        (ImageRef(str(shared / "derm" / "images" / f"{DETECTION_LESION}.jpg"), "dermoscopy"),),
        instruction(Task.DETECTION, target="lesion"), f"lesion {DET_TOKEN}.",
        boxes=(BoxTarget("lesion", mask_box(mask)),), instruction_fields={"image": "<img0>", "target": "lesion"}))
    samples.append(Sample(
        "ct-liver", "totalsegmentator", Task.SEGMENTATION.value, "ct",
        (ImageRef(str(shared / "nifti" / "example_ct_sm.nii.gz"), "ct"),),
        instruction(Task.SEGMENTATION, target="liver"), f"The segmentation mask of liver is {SEG3D_TOKEN}.",
        masks=(MaskTarget(str(shared / "nifti" / "example_seg.nii.gz"), "liver", value=LIVER),),
        instruction_fields={"image": "<img0>", "target": "liver"}))
    return [s for s in samples if _kind(s) in tasks]


def _kind(sample: Sample) -> str:
    if sample.task == Task.SEGMENTATION.value:
        return "seg3d" if sample.is_3d else "seg2d"
    return sample.task


def teacher_forced_losses(checkpoint: Path, samples: list[Sample]) -> dict[str, float]:
    """Loss of each sample (its stored instruction, no augmentation) in eval mode: ``{sample_id: loss}``."""
    model, tokenizer = load_checkpoint(checkpoint)
    losses = {}
    with torch.no_grad():
        for sample in samples:
            batch = collate([load_example(sample, model.config, None, False)], tokenizer, model.config)
            losses[sample.sample_id] = model(batch).loss.item()
    return losses


def generated_metrics(checkpoint: Path, samples: list[Sample], seed: int = 1) -> dict[str, dict]:
    """Greedy generation for every sample with a Table 5 instruction drawn with ``seed`` (not necessarily one seen
    in training), scored against its targets: ``{sample_id: {"text", "similarity"|"iou"|"dice"}}``. A missing
    box or mask scores 0."""
    medversa = MedVersa.from_checkpoint(checkpoint)
    results = {}
    for k, sample in enumerate(samples):
        fields = dict(sample.instruction_fields)
        question = instruction(sample.task, rng=example_rng(seed, 0, k), **fields)
        out = medversa.generate([image.path for image in sample.images], question, context=sample.context,
                                do_sample=False, max_new_tokens=160)
        entry = {"question": question, "text": out.text}
        if sample.task == Task.REPORT.value:
            entry["similarity"] = difflib.SequenceMatcher(None, out.text, sample.answer).ratio()
        elif sample.task == Task.DETECTION.value:
            entry["iou"] = box_iou(sample.boxes[0].xyxy, out.boxes[0].xyxy) if out.boxes else 0.0
        elif sample.is_3d:
            target = load_volume(sample.masks[0].path).as_tensor()[0].numpy() == sample.masks[0].value
            entry["dice_3d"] = dice(target, out.masks_3d[0].mask) if out.masks_3d else 0.0
        else:
            target = np.asarray(Image.open(sample.masks[0].path).convert("L")) > 0
            entry["dice_2d"] = dice(target, out.masks_2d[0].mask) if out.masks_2d else 0.0
        results[sample.sample_id] = entry
    return results


def run(steps: int, reports: int, workdir: Path, seed: int = 0, lr: float = 1e-2,
        tasks: tuple[str, ...] = TASKS) -> dict:
    """Write the learnable tiny checkpoint, train ``steps`` steps on :func:`overfit_samples`, measure; returns
    ``{"seconds", "losses": {id: [before, after]}, "generated": {...}, "met": bool}``."""
    texts = [report_answer(r["FINDINGS"], r["IMPRESSION"]) for r in iu_reports(SHARED, 200)]
    init = write_tiny_checkpoint(workdir / "init", texts=texts, seed=seed, config=MedVersaConfig.tiny(learnable=True))
    samples = overfit_samples(SHARED, reports, tasks)
    manifest = write_manifest(samples, workdir / "train.jsonl")
    config = TrainConfig(str(init), str(manifest), str(workdir / "run"), seed=seed, batch_size=1,
                         total_steps=steps, warmup_steps=min(20, steps - 1), lr=lr, min_lr=lr / 20,
                         warmup_start_lr=lr / 10, augment=False, progress=False, save_every=steps,
                         log_every=max(1, steps // 10), allowed_roots=[str(SHARED)])
    before = teacher_forced_losses(init, samples)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(config)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    checkpoint = result.checkpoints[-1]
    after = teacher_forced_losses(checkpoint, samples)
    generated = generated_metrics(checkpoint, samples)
    met = all(value >= TARGETS[key] for entry in generated.values() for key, value in entry.items()
              if key in TARGETS)
    return {"steps": steps, "seconds": seconds, "cpu_seconds": cpu, "losses": {k: [before[k], after[k]] for k in before},
            "generated": generated, "met": met}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps (batch size 1)")
    parser.add_argument("--reports", type=int, default=2, choices=(1, 2), help="chest radiographs with IU reports")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--lr", type=float, default=1e-2, help="peak learning rate")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="tasks to train (all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        figures = run(args.steps, args.reports, Path(tmp), lr=args.lr, tasks=tuple(args.tasks))
    print(f"learnable tiny MedVersa, {args.steps} steps (batch 1) on real samples: training {figures['seconds']:.0f} s "
          f"wall, {figures['cpu_seconds']:.0f} s CPU ({args.threads} torch threads)")
    for sample_id, (before, after) in figures["losses"].items():
        entry = figures["generated"][sample_id]
        scores = ", ".join(f"{k} {v:.3f} (target >= {TARGETS[k]})" for k, v in entry.items() if k in TARGETS)
        print(f"{sample_id:22s} loss {before:8.4f} -> {after:8.4f}  {scores}")
        print(f"{'':22s} generated: {entry['text'][:110]!r}")
    print("targets met" if figures["met"] else "TARGETS MISSED")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
