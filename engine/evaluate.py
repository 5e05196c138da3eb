"""Evaluate a MedVersa checkpoint on a manifest: generate an answer per sample, score each task
(:mod:`engine.evaluation.scoring`), write the scores with their 95% bootstrap CIs and backends.

``python -m engine.evaluate --checkpoint DIR --manifest M.jsonl --out DIR [--metrics-dir DIR --metrics bertscore,chexbert]``

Writes ``DIR/scores.csv`` (:data:`SCORE_COLUMNS`), ``DIR/predictions.jsonl`` (one answer per sample with its boxes)
and ``DIR/provenance.json`` (checkpoint, manifest, library versions, metrics not computed and why). A model metric
asked for but unavailable (weights not at the local path) is reported and skipped; the exit status is then 1, as
for every refused request of this project's commands.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from collections import defaultdict
from dataclasses import asdict, fields
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.evaluation.scoring import OFFLINE_TEXT_METRICS, Prediction, Score, score_task

SCORE_COLUMNS = [f.name for f in fields(Score)]


def read_target_mask(mask, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A target mask (:class:`engine.data.schema.MaskTarget`) as bool on its file's own grid: PNG ``(H, W)``,
    NIfTI in the file's voxel order; ``mask.value`` selects one label, else nonzero is foreground.

    Raises:
        ValueError: the file cannot be read, or its shape differs from ``shape``.
    """
    path = Path(mask.path)
    try:
        if path.name.lower().endswith((".nii", ".nii.gz")):
            import nibabel as nib

            values = np.asanyarray(nib.load(str(path)).dataobj)
        else:
            from PIL import Image

            with Image.open(path) as img:
                values = np.asarray(img.convert("L") if img.mode not in ("L", "I", "I;16", "1") else img)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read target mask {path}: {err}") from err
    selected = values == mask.value if mask.value is not None else values != 0
    if shape is not None and selected.shape != tuple(shape):
        raise ValueError(f"target mask {path} has shape {selected.shape}, the model's mask {tuple(shape)}")
    return selected


def predict(model, samples: Sequence, batch_size: int, **generation) -> list:
    """One :class:`engine.inference.GenerationResult` per sample (greedy unless ``generation`` says otherwise),
    in sample order; samples are batched by imaging type."""
    from engine.inference import Request

    order = sorted(range(len(samples)), key=lambda i: samples[i].imaging)
    results: list = [None] * len(samples)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        requests = [Request([im.path for im in samples[i].images], samples[i].instruction, samples[i].context)
                    for i in chunk]
        for i, result in zip(chunk, model.generate_batch(requests, keep_task_tokens=True, **generation)):
            results[i] = result
    return results


def to_prediction(sample, result) -> Prediction:
    """The scored part of a generation result: text, ``(label, xyxy)`` boxes, masks as bool arrays on the
    target's grid (2D on the input image's grid, 3D on the input volume's own voxel grid)."""
    masks = [m.mask for m in result.masks_2d] + [m.mask for m in result.masks_3d]
    return Prediction(sample.sample_id, result.text, tuple((b.label, tuple(b.xyxy)) for b in result.boxes),
                      tuple(np.asarray(m) != 0 for m in masks))


def score_all(samples: Sequence, predictions: Sequence[Prediction], text_metrics=OFFLINE_TEXT_METRICS,
              n_resamples: int = 1000, seed: int = 0) -> list[Score]:
    """Scores of every task present, tasks in first-seen order.

    Raises:
        ValueError: see :func:`engine.evaluation.scoring.score_task` and :func:`read_target_mask`.
    """
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        by_task[sample.task].append(i)
    scores = []
    for task, rows in by_task.items():
        task_samples = [samples[i] for i in rows]
        task_predictions = [predictions[i] for i in rows]
        targets = None
        if task == "segmentation":
            targets = [[read_target_mask(m) for m in s.masks] for s in task_samples]
        scores += score_task(task, task_samples, task_predictions, targets, text_metrics, n_resamples, seed)
    return scores


def write_scores(scores: Sequence[Score], path: Path) -> None:
    """``scores.csv`` with :data:`SCORE_COLUMNS`."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SCORE_COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(s) for s in scores)


def run(checkpoint: Path, manifest: Path, out: Path, metrics_dir: Path | None = None,
        metric_names: Sequence[str] = (), batch_size: int = 4, max_new_tokens: int = 256, n_resamples: int = 1000,
        seed: int = 0, device: str = "cpu", allowed_roots: Sequence[Path] = (),
        dtype: str = "auto") -> tuple[list[Score], dict[str, str]]:
    """Generate, score and write the outputs (see the module docstring); returns the scores and the model metrics
    not computed with the reason. Manifest paths must lie in its folder or ``allowed_roots``
    (:func:`engine.data.manifest.read_manifest`). ``dtype``: the base LM's, as
    :func:`engine.inference.inference_dtype` (``"auto"``: bfloat16 on CUDA, as ``engine.drafts``; float32 on CPU).

    Raises:
        engine.data.manifest.ManifestError: a bad manifest row (nothing is generated then).
        ValueError, OSError: an unreadable checkpoint or target mask; ``out`` is a file (checked first).
    """
    from engine.data.manifest import read_manifest
    from engine.evaluation.model_metrics import MetricUnavailable, model_metric
    from engine.inference import MedVersa, inference_dtype

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    samples = read_manifest(manifest, allowed_roots=allowed_roots)
    text_metrics, unavailable = list(OFFLINE_TEXT_METRICS), {}
    for name in metric_names:
        try:
            text_metrics.append(model_metric(name, metrics_dir))
        except MetricUnavailable as err:
            unavailable[name] = str(err)
    model = MedVersa.from_checkpoint(checkpoint, device=device, dtype=inference_dtype(dtype, device))
    results = predict(model, samples, batch_size, max_new_tokens=max_new_tokens, do_sample=False)
    predictions = [to_prediction(s, r) for s, r in zip(samples, results)]
    scores = score_all(samples, predictions, text_metrics, n_resamples, seed)

    out.mkdir(parents=True, exist_ok=True)
    write_scores(scores, out / "scores.csv")
    with (out / "predictions.jsonl").open("w") as handle:
        for sample, result in zip(samples, results):
            handle.write(json.dumps({"sample_id": sample.sample_id, "task": sample.task, "answer": result.text,
                                     "boxes": [{"label": b.label, "xyxy": list(b.xyxy)} for b in result.boxes]}) + "\n")
    provenance = {
        "checkpoint": str(Path(checkpoint).resolve()), "manifest": str(Path(manifest).resolve()),
        "samples": len(samples), "n_resamples": n_resamples, "seed": seed, "python": platform.python_version(),
        "versions": {p: version(p) for p in ("torch", "transformers", "peft", "monai", "nltk", "rouge-score",
                                             "scikit-learn", "scipy")},
        "metrics_not_computed": unavailable,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2))
    return scores, unavailable


def main(argv: list[str] | None = None) -> None:
    from engine.evaluation.model_metrics import MODEL_METRICS

    parser = argparse.ArgumentParser(description="Evaluate a MedVersa checkpoint on a manifest (scores with 95% CIs).")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="folder for scores.csv, predictions.jsonl, provenance.json")
    parser.add_argument("--metrics-dir", type=Path, default=None, help="local folder with bertscore/ and chexbert/ weights")
    parser.add_argument("--metrics", default="", help=f"comma-separated model metrics, of {','.join(MODEL_METRICS)}")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--allow-root", action="append", type=Path, default=[], metavar="FOLDER",
                        help="a folder besides the manifest's own that its image and mask paths may lie in "
                             "(repeatable)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="base LM dtype (auto: bfloat16 on CUDA as engine.drafts, float32 on CPU)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODEL_METRICS))
    if unknown:
        parser.error(f"unknown metric(s) {unknown}; known: {list(MODEL_METRICS)}")
    try:
        scores, unavailable = run(args.checkpoint, args.manifest, args.out, args.metrics_dir, names, args.batch_size,
                                  args.max_new_tokens, args.n_resamples, args.seed, args.device, args.allow_root,
                                  args.dtype)
    except (ValueError, OSError) as error:  # ManifestError and CheckpointError are ValueErrors
        sys.exit(f"error: {error}")
    for s in scores:
        print(f"{s.task:<15} {s.metric:<10} {s.value:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}] n={s.n}  ({s.backend})")
    for name, reason in unavailable.items():
        print(f"not computed: {reason}", file=sys.stderr)
    print(f"scores written to {args.out / 'scores.csv'}")
    if unavailable:
        sys.exit(1)


if __name__ == "__main__":
    main()
