"""Model drafts for a reader study: one findings/impression draft per case, written as JSONL for the study import.

``python -m engine.drafts --checkpoint DIR --database URL --study NAME --arm model --out drafts.jsonl``

Each line is ``{"case_key", "arm", "text": "FINDINGS: ... IMPRESSION: ...", "source"}``, the format that
:func:`studyapp.services.drafts.import_drafts` reads, with ``"findings"`` when the answer grounds sentences: each
``<DET>`` box and ``<2DSEG>``/``<3DSEG>`` mask with the sentence that produced it, on the SOP Instances of the
case (``studyapp.services.findings``; a 3D mask is sampled on each slice of its series). The findings and the
impression are generated with the first instruction of their Table 5 templates (paper section 4.4: sections are
generated separately), with the case's clinical context. Cases whose ``case_key`` is already in the output are
skipped, so an interrupted run resumes where it stopped. Runs on CPU, one GPU, or several processes with
``accelerate launch --multi_gpu --num_processes N -m engine.drafts ...`` (or ``torchrun --nproc_per_node N``, also
on CPU): every process reads the same list of missing cases, takes its share via
``PartialState.split_between_processes``, writes its own part file, and the main process merges the parts into
``--out``.

A CT series is read from the folder of its first instance, so that folder must hold only that series.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pydicom
import torch
from safetensors import SafetensorError
from sqlalchemy import select
from tqdm import tqdm

from engine.configuration import MedVersaConfig
from engine.inference import GenerationResult, MedVersa, PreparedImage, Request, inference_dtype
from engine.processing import Task, format_context, instruction

DICOM_3D_MODALITIES = {"CT"}


@dataclass
class CaseInput:
    """What the model reads for one case: image paths (2D files, or series folders for CT), or the images already
    prepared (:meth:`engine.inference.MedVersa.prepare_image`), and context; ``sources[i]``: the (SOP Instance UID,
    file) of image i (one for a 2D file, the series' slices for CT)."""

    case_key: str
    images: list[Path | PreparedImage]
    context: str | None
    sources: list[list[tuple[str, Path]]] = field(default_factory=list)


def load_cases(session_factory, study_name: str, max_images: int, arm: str | None = None) -> list[CaseInput]:
    """Cases of the reader study ``study_name`` with their images and clinical context, in case order.

    2D series contribute their instances (up to ``max_images`` images per case); a CT series contributes its
    folder (the folder of its first instance) as one volume.

    Raises:
        LookupError: no reader study of that name, or ``arm`` is not one of its arms.
        ValueError: a case without any image file.
    """
    from studyapp.db.models import ReaderStudy

    with session_factory() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == study_name))
        if study is None:
            raise LookupError(f"no reader study named {study_name!r} in the database")
        arms = [a.code for a in study.arms]
        if arm is not None and arm not in arms:
            raise LookupError(f"study {study_name!r} has no arm {arm!r}; its arms are {arms}")
        cases = []
        for case in study.cases:
            images: list[Path] = []
            sources: list[list[tuple[str, Path]]] = []
            for series in case.series:
                if not series.instances:
                    continue
                if (series.modality or "").upper() in DICOM_3D_MODALITIES:
                    images.append(Path(series.instances[0].file_path).parent)
                    sources.append([(i.sop_instance_uid, Path(i.file_path)) for i in series.instances])
                else:
                    images.extend(Path(i.file_path) for i in series.instances)
                    sources.extend([(i.sop_instance_uid, Path(i.file_path))] for i in series.instances)
            if not images:
                raise ValueError(f"case {case.case_key!r} of study {study_name!r} has no image files")
            context = format_context(case.patient_age, case.patient_sex, case.indication, case.comparison)
            cases.append(CaseInput(case.case_key, images[:max_images], context, sources[:max_images]))
    return cases


def written_lines(path: Path) -> Iterator[tuple[str, str]]:
    """``(case_key, line)`` for each complete draft line of ``path`` (a missing file is empty; a torn last line
    from an interrupted run is skipped)."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)["case_key"], line
        except (json.JSONDecodeError, KeyError, TypeError):
            continue


def done_case_keys(paths: Sequence[Path]) -> set[str]:
    """``case_key`` values already written in any of ``paths``."""
    return {key for path in paths for key, _ in written_lines(path)}


def merge_parts(out: Path, parts: Sequence[Path]) -> int:
    """Append the complete lines of the per-process ``parts`` to ``out`` (skipping case_keys already there) and
    delete the parts; returns the number of lines appended."""
    merged = done_case_keys([out])
    drop_torn_tail(out)
    appended = 0
    with out.open("a") as handle:
        for part in parts:
            for key, line in written_lines(part):
                if key not in merged:
                    handle.write(line + "\n")
                    merged.add(key)
                    appended += 1
            part.unlink(missing_ok=True)
    return appended


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def case_findings(result: GenerationResult, case: CaseInput) -> list[dict]:
    """The boxes and masks of one answer as drafts-file findings (``studyapp.services.findings``), each with the
    sentence that produced it (the text before its task token, ``Box.label``/``Mask2D.label``/``Mask3D.label``).

    Boxes and 2D masks lie on the first frame of the instance of their ``<img{i}>``; a 3D mask is sampled on the
    pixel grid of every slice of its series (``Mask3D.frames_for``) and keeps the slices it covers.
    """
    from studyapp.services.findings import encode_rle

    out = []
    for box in result.boxes:
        uid = case.sources[box.image_index][0][0]
        out.append({"type": "box", "sentence": box.label, "sop_instance_uid": uid, "frame": 0,
                    "xyxy": [round(float(v), 6) for v in box.xyxy]})
    for mask in result.masks_2d:
        uid = case.sources[mask.image_index][0][0]
        rows, columns = mask.mask.shape
        out.append({"type": "mask", "sentence": mask.label, "rows": rows, "columns": columns,
                    "slices": [{"sop_instance_uid": uid, "frame": 0, "rle": encode_rle(mask.mask)}]})
    for mask in result.masks_3d:
        series = case.sources[mask.image_index]
        frames = mask.frames_for([pydicom.dcmread(path, stop_before_pixels=True) for _, path in series])
        slices = [{"sop_instance_uid": uid, "frame": 0, "rle": encode_rle(frame)}
                  for (uid, _), frame in zip(series, frames) if frame.any()]
        if slices:
            out.append({"type": "mask", "sentence": mask.label, "rows": int(frames.shape[1]),
                        "columns": int(frames.shape[2]), "slices": slices})
    return out


def draft_texts(model: MedVersa, cases: Sequence[CaseInput], **generation) -> list[tuple[str, list[dict]]]:
    """``("FINDINGS: ... IMPRESSION: ...", findings)`` for each case, generated in one batch per section; the
    findings of both sections (:func:`case_findings`)."""
    texts, grounded = {}, [[] for _ in cases]
    for task in (Task.FINDINGS, Task.IMPRESSION):
        requests = []
        for case in cases:
            ids = "".join(f"<img{i}>" for i in range(len(case.images)))
            requests.append(Request(case.images, instruction(task, image=ids, index=0), case.context))
        results = model.generate_batch(requests, **generation)
        texts[task] = [r.text for r in results]
        for n, (case, result) in enumerate(zip(cases, results)):
            grounded[n].extend(case_findings(result, case))
    return [(f"FINDINGS: {f} IMPRESSION: {i}", found)
            for f, i, found in zip(texts[Task.FINDINGS], texts[Task.IMPRESSION], grounded)]


def drop_torn_tail(path: Path) -> None:
    """Remove an incomplete last line (no newline: a write interrupted mid-line) so appends start cleanly."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def write_drafts(model: MedVersa, cases: Sequence[CaseInput], out: Path, arm: str, source: str,
                 batch_size: int = 4, progress: bool = True, **generation) -> int:
    """Append one JSONL draft line per case to ``out``, flushing after each batch; returns lines written. Cases
    whose images the model refuses are skipped (:func:`prepare_case`)."""
    drop_torn_tail(out)
    written = 0
    with out.open("a") as handle, tqdm(total=len(cases), desc="drafts", unit="case", disable=not progress) as bar:
        for batch in _chunks(cases, batch_size):
            ready = [c for c in (prepare_case(model, case) for case in batch) if c is not None]
            for case, (text, found) in zip(ready, draft_texts(model, ready, **generation) if ready else []):
                line = {"case_key": case.case_key, "arm": arm, "text": text, "source": source}
                if found:
                    line["findings"] = found
                handle.write(json.dumps(line) + "\n")
                written += 1
            handle.flush()
            bar.update(len(batch))
    return written


def prepare_case(model: MedVersa, case: CaseInput) -> CaseInput | None:
    """``case`` with its images prepared once for both sections; ``None`` when the model refuses an image (e.g. a
    radiograph that is not of a human chest, :func:`engine.processing.detect_modality`): the reason is printed on
    stderr, the case gets no draft (a later run tries it again) and the other cases go on."""
    try:
        return replace(case, images=[model.prepare_image(p) if isinstance(p, (str, Path)) else p for p in case.images])
    except ValueError as error:
        tqdm.write(f"case {case.case_key}: no draft: {error}", file=sys.stderr)
        return None


def run(checkpoint: Path, database: str, study: str, out: Path, arm: str = "model", source: str | None = None,
        batch_size: int = 4, max_new_tokens: int = 256) -> int:
    """Generate the missing drafts of ``study`` into ``out`` on this process's share of the cases.

    Returns the number of lines this process wrote. See the module docstring for multi-GPU runs.
    """
    from accelerate import PartialState

    from studyapp.db.session import open_database

    state = PartialState(cpu=not torch.cuda.is_available())  # multi-process CPU runs need cpu=True
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = [out.with_name(f"{out.name}.part{rank}") for rank in range(state.num_processes)]
    dtype = inference_dtype("auto", state.device)
    config = MedVersaConfig.load(checkpoint)  # cheap checks first: the study, arm and output before the model
    cases = load_cases(open_database(database), study, config.max_images, arm)
    model = MedVersa.from_checkpoint(checkpoint, device=state.device, dtype=dtype)
    done = done_case_keys([out, *parts])
    todo = [c for c in cases if c.case_key not in done]
    state.wait_for_everyone()  # every process splits the same list: nobody writes before all have read
    source = source or f"MedVersa {Path(checkpoint).resolve().name}"
    target = out if state.num_processes == 1 else parts[state.process_index]
    with state.split_between_processes(todo) as mine:
        written = write_drafts(model, mine, target, arm, source, batch_size, progress=state.is_local_main_process,
                               max_new_tokens=max_new_tokens, do_sample=False)
    state.wait_for_everyone()
    if state.num_processes > 1 and state.is_main_process:
        merge_parts(out, parts)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate MedVersa drafts for a reader study (JSONL).")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--database", required=True, help="SQLAlchemy URL of the study database")
    parser.add_argument("--study", required=True, help="reader study name")
    parser.add_argument("--arm", default="model")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--source", default=None, help="source recorded with each draft")
    parser.add_argument("--batch-size", type=_positive_int, default=4)
    parser.add_argument("--max-new-tokens", type=_positive_int, default=256)
    args = parser.parse_args(argv)
    print(f"loading the checkpoint {args.checkpoint} (weights, tokenizer, vision encoders) and the study "
          f"{args.study!r}...", file=sys.stderr, flush=True)
    try:
        written = run(args.checkpoint, args.database, args.study, args.out, args.arm, args.source, args.batch_size,
                      args.max_new_tokens)
    except (LookupError, ValueError, OSError, SafetensorError) as error:  # CheckpointError is a ValueError
        sys.exit(f"error: {error}")
    print(f"{written} draft(s) written to {args.out}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


if __name__ == "__main__":
    main()
