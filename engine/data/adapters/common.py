"""Helpers shared by the dataset adapters: layout errors that name the file, CSV reading, report-section parsing,
the answer texts with task tokens, run-length decoding, and the normalized box extent of a mask.

Answer formats are those of the released MedVersa model (engine-notes.md, "Orchestration"): detection
``"cls1 <DET>. cls2 <N/A>."``, segmentation ``"The segmentation mask of {target} is <2DSEG>."`` (``<3DSEG>`` for
CT), reports ``"FINDINGS: ... IMPRESSION: ..."`` (the draft format of :mod:`engine.drafts`).
"""

from __future__ import annotations

import csv
import gzip
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from engine.configuration import DET_TOKEN, NA_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.data.manifest import write_manifest
from engine.data.schema import MAX_DETECTION_CLASSES, BoxTarget, ImageRef, ImagingType, MaskTarget, Sample
from engine.processing import Task, instruction
from studyapp.report_sections import split_sections

log = logging.getLogger("engine.data.adapters")


class AdapterError(ValueError):
    """A dataset folder that does not have the published layout: the message names the missing or malformed file."""


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is an existing file, else :class:`AdapterError` ``"{what} not found: {path}"``."""
    if not path.is_file():
        raise AdapterError(f"{what} not found: {path}")
    return path


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of the file ``path``.

    Raises:
        AdapterError: the file is missing, unreadable or not UTF-8 (named).
    """
    require_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AdapterError(f"cannot read {what} {path}: {err}") from err


def image_size(path: Path, what: str) -> tuple[int, int]:
    """``(width, height)`` of a PNG/JPEG image from its header.

    Raises:
        AdapterError: the file is missing or not an image PIL can identify (named).
    """
    from PIL import Image

    require_file(path, what)
    try:
        with Image.open(path) as img:
            return img.size
    except OSError as err:
        raise AdapterError(f"cannot read the {what} {path}: {err}") from err


def first_existing(candidates: Sequence[Path], what: str) -> Path:
    """The first existing file of ``candidates`` (e.g. ``x.csv`` and ``x.csv.gz``).

    Raises:
        AdapterError: none exists; the message lists every path tried.
    """
    for path in candidates:
        if path.is_file():
            return path
    raise AdapterError(f"{what} not found: tried {', '.join(str(p) for p in candidates)}")


def iter_csv(path: Path, required: Iterable[str], what: str, delimiter: str = ",") -> Iterator[dict[str, str]]:
    """Rows of a CSV file (plain or ``.gz``), streamed, as dicts of stripped strings (empty cells ``""``); large
    tables (CheXmask's RLE columns) never sit in memory whole.

    Raises:
        AdapterError: the file is missing, unreadable, or lacks one of the ``required`` columns (named).
    """
    require_file(path, what)
    try:
        with (gzip.open(path, "rt", encoding="utf-8-sig", newline="") if path.name.endswith(".gz")
              else open(path, encoding="utf-8-sig", newline="")) as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            missing = [c for c in required if c not in (reader.fieldnames or ())]
            if missing:
                raise AdapterError(f"{what} {path} lacks the column(s) {missing}; it has {reader.fieldnames}")
            for row in reader:
                yield {k: (v or "").strip() for k, v in row.items() if k is not None}
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as err:
        raise AdapterError(f"cannot read {what} {path}: {err}") from err


def read_csv(path: Path, required: Iterable[str], what: str, delimiter: str = ",") -> list[dict[str, str]]:
    """All rows of :func:`iter_csv` as a list (same errors)."""
    return list(iter_csv(path, required, what, delimiter))


def manifest_path(path: Path, manifest_dir: Path) -> str:
    """The path as written into a manifest: relative to the manifest's folder when inside it, else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(manifest_dir.resolve()))
    except ValueError:
        return str(path)


def image_ids(count: int, start: int = 0) -> str:
    """Image identifiers ``<img{start}>...<img{start+count-1}>`` for an instruction (engine-notes.md)."""
    return "".join(f"<img{i}>" for i in range(start, start + count))


def finish(samples: list[Sample], out_manifest: Path, source: str, skipped: dict[str, int] | None = None) -> int:
    """Write ``samples`` as the manifest ``out_manifest``, log the count and what was skipped, return the count.

    Raises:
        AdapterError: no sample could be built (an empty manifest is never a useful result).
    """
    if not samples:
        raise AdapterError(f"no {source} samples could be built ({skipped or {}}); check the dataset folder")
    write_manifest(samples, out_manifest)
    log.info("%s: wrote %d samples to %s; skipped %s", source, len(samples), out_manifest, skipped or {})
    return len(samples)


# ------------------------------------------------------------------------------------------------ reports

def report_sections(text: str) -> dict[str, str]:
    """Sections of a free-text radiology report by their headings (``FINDINGS:``, ``IMPRESSION:``, ``INDICATION:``,
    ``COMPARISON:``...; parsed by :func:`studyapp.report_sections.split_sections`, the parser the SR export and the
    analysis use), keyword matching as in CXR-RePair (paper 4.1, MIMIC-CXR). Upper-case sub-headings that are no
    section ("LUNGS:", "HEART:") stay inside their section.

    Returns:
        canonical heading (:data:`studyapp.report_sections.HEADINGS`, e.g. CONCLUSION is IMPRESSION) -> section
        text with whitespace collapsed; empty sections are left out; a heading given twice has its texts joined.
        Text before the first heading is dropped.
    """
    parsed = split_sections(text)
    return {name: " ".join(body.split()) for name, body in parsed.sections.items() if body.strip()}


def report_answer(findings: str, impression: str) -> str:
    """The full-report answer ``"FINDINGS: {findings} IMPRESSION: {impression}"`` (format of :mod:`engine.drafts`)."""
    return f"FINDINGS: {findings} IMPRESSION: {impression}"


def report_samples(sample_id: str, source: str, imaging: str, images: tuple[ImageRef, ...], findings: str | None,
                   impression: str | None, context: str | None, rng: random.Random) -> list[Sample]:
    """Findings, impression and (when both exist) full-report samples of one study (paper 4.1), instructions drawn
    from Table 5 with ``rng``, referring to all ``images``."""
    ids = image_ids(len(images))
    texts = [(Task.FINDINGS, findings), (Task.IMPRESSION, impression),
             (Task.REPORT, report_answer(findings, impression) if findings and impression else None)]
    return [Sample(sample_id=f"{sample_id}:{task.value}", source=source, task=task.value, imaging=imaging,
                   images=images, **table5(task, rng, image=ids), answer=answer, context=context)
            for task, answer in texts if answer]


# ----------------------------------------------------------------------------------------- task answers


def table5(task: Task, rng: random.Random, image: str = "<img0>", **fields: str) -> dict:
    """``instruction`` and ``instruction_fields`` of a :class:`Sample` (as keyword arguments): one Table 5 wording
    drawn with ``rng`` (stored as an example) and the fields that let training draw a wording anew every iteration
    (paper 4.3; :func:`engine.data.loading.draw_wording`)."""
    values = {"image": image, **fields}
    return {"instruction": instruction(task, rng=rng, **values), "instruction_fields": values}



def detection_answer(entries: Sequence[tuple[str, tuple[float, float, float, float] | None]],
                     image_index: int = 0) -> tuple[str, tuple[BoxTarget, ...]]:
    """Detection answer and its boxes: ``"cls1 <DET>. cls2 <N/A>."``, one ``<DET>`` per entry with a box (normalized
    xyxy), ``<N/A>`` for an entry without one (engine-notes.md).

    Raises:
        ValueError: no entries, or more than :data:`MAX_DETECTION_CLASSES`.
    """
    if not 1 <= len(entries) <= MAX_DETECTION_CLASSES:
        raise ValueError(f"a detection answer holds 1 to {MAX_DETECTION_CLASSES} classes, got {len(entries)}")
    parts = [f"{label} {DET_TOKEN if box is not None else NA_TOKEN}." for label, box in entries]
    boxes = tuple(BoxTarget(label=label, xyxy=tuple(float(v) for v in box), image_index=image_index)
                  for label, box in entries if box is not None)
    return " ".join(parts), boxes


def segmentation_answer(target: str, token: str) -> str:
    """``"The segmentation mask of {target} is {token}."`` with ``token`` ``<2DSEG>`` or ``<3DSEG>``."""
    return f"The segmentation mask of {target} is {token}."


def segmentation_sample(sample_id: str, source: str, images: tuple[ImageRef, ...], target: str,
                        mask: MaskTarget, rng: random.Random, context: str | None = None) -> Sample:
    """A segmentation sample of one target: instruction drawn from Table 5, answer
    "The segmentation mask of {target} is <2DSEG>." (``<3DSEG>`` when the image is CT), imaging type of the image."""
    imaging = images[0].modality
    token = SEG3D_TOKEN if imaging == ImagingType.CT.value else SEG2D_TOKEN
    return Sample(sample_id=sample_id, source=source, task=Task.SEGMENTATION.value, imaging=imaging, images=images,
                  **table5(Task.SEGMENTATION, rng, target=target),
                  answer=segmentation_answer(target, token), context=context, masks=(mask,))


def structure_name(stem: str) -> str:
    """Readable structure name of a file or label name: ``"kidney_right"`` -> ``"right kidney"``,
    ``"urinary_bladder"`` -> ``"urinary bladder"``."""
    words = stem.replace("_", " ").split()
    if len(words) > 1 and words[-1].lower() in ("left", "right"):
        words = [words[-1], *words[:-1]]
    return " ".join(words)


# ------------------------------------------------------------------------------------------------- masks


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Normalized xyxy extent of the nonzero pixels of a 2D mask ``(H, W)``: the pixel-edge box
    ``(xmin / W, ymin / H, (xmax + 1) / W, (ymax + 1) / H)``, in [0, 1]; ``None`` for an empty mask.

    Raises:
        ValueError: not a 2D array.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) mask, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    height, width = mask.shape
    return (cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height)


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode a CheXmask run-length string ``"start length start length ..."`` into a ``(height, width)`` ``uint8``
    mask of 0/1. Starts are 1-based positions in the row-major (C-order) flattened mask (CheXmask database code,
    ``DataPostprocessing/utils.py``: ``get_mask_from_RLE``). An empty string is an empty mask.

    Raises:
        ValueError: non-integer tokens, an odd token count, or a run outside the ``height * width`` pixels.
    """
    try:
        runs = np.array([int(v) for v in rle.split()], dtype=np.int64)
    except ValueError as err:
        raise ValueError(f"RLE holds a non-integer token: {err}") from err
    if runs.size % 2:
        raise ValueError(f"RLE needs start/length pairs, got {runs.size} numbers")
    flat = np.zeros(height * width, dtype=np.uint8)
    starts, lengths = runs[0::2] - 1, runs[1::2]
    if runs.size and (starts.min() < 0 or lengths.min() < 0 or (starts + lengths).max() > flat.size):
        raise ValueError(f"RLE run outside a {height}x{width} mask")
    for start, length in zip(starts, lengths):
        flat[start:start + length] = 1
    return flat.reshape(height, width)


# ----------------------------------------------------------------------------------------------- volumes


def nifti_shape(path: Path, what: str) -> tuple[int, ...]:
    """Voxel shape of a NIfTI file from its header (no voxel data read).

    Raises:
        AdapterError: missing or unreadable file (named).
    """
    import nibabel as nib

    require_file(path, what)
    try:
        return tuple(int(v) for v in nib.load(path).shape)
    except Exception as err:  # nibabel raises several types for broken headers
        raise AdapterError(f"cannot read {what} {path}: {err}") from err


def label_values(path: Path) -> list[int]:
    """Sorted nonzero integer values present in a NIfTI label volume (one read of its voxels).

    Raises:
        AdapterError: unreadable file (named).
    """
    import nibabel as nib

    try:
        values = np.unique(np.asarray(nib.load(path).dataobj))
    except Exception as err:  # nibabel / zlib errors for truncated files
        raise AdapterError(f"cannot read the label volume {path}: {err}") from err
    return [int(v) for v in values if v != 0]
