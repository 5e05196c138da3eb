"""JSONL manifests: one :class:`~engine.data.schema.Sample` per line in the ``dataclasses.asdict`` layout.

Every row is validated when read, before any training step (issue 8, "Bad input"): the fields and their types,
the task and imaging type, image identifiers in the instruction, task-token counts against the targets, boxes in
``[0, 1]``, unique ``sample_id``; with ``check_files`` also that every image and mask exists and is readable
(headers, and PNG chunks / JPEG scans complete; every pixel with ``decode``) and that each mask has its image's
shape. An empty manifest is an error.

Every image and mask path must resolve (symbolic links followed) inside the manifest's folder or an allowed root
(``allowed_roots``; ``--allow-root`` on the command lines, ``allowed_roots`` in a training config): a manifest from
elsewhere cannot make a run or a check open ``/etc/shadow`` or ``../../../../etc/passwd`` (issue 18). The check
looks at paths only; a file outside is never opened.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path

import numpy as np
from PIL import Image

from engine.configuration import DET_TOKEN, SEG2D_TOKEN, SEG3D_TOKEN
from engine.data.schema import ROLES, BoxTarget, ImageRef, ImagingType, MaskTarget, Sample, Task
from engine.processing import TEMPLATES, check_image_references, instruction, load_rgb, load_volume

log = logging.getLogger(__name__)

_RASTER = (".png", ".jpg", ".jpeg")
_NIFTI = (".nii", ".nii.gz")

RowError = tuple[int, str]


class ManifestError(ValueError):
    """Invalid manifest rows. ``errors`` holds ``(line, reason)`` pairs (1-based line numbers of ``path``)."""

    def __init__(self, path: str | Path, errors: list[RowError]):
        self.path = str(path)
        self.errors = errors
        shown = "\n".join(f"{self.path}:{line}: {reason}" for line, reason in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} invalid row(s) in manifest {self.path}:\n{shown}{more}")


class _Invalid(ValueError):
    """One row's problem (internal; collected into :class:`ManifestError`)."""


def write_manifest(samples: list[Sample], path: str | Path) -> Path:
    """Write ``samples`` as JSONL (one ``dataclasses.asdict`` object per line, UTF-8) to ``path``.

    The file is written to a temporary name and renamed, so an existing manifest is never left half-written.
    Paths are written as given (relative paths are read relative to the manifest's folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for sample in samples:
            f.write(json.dumps(asdict(sample), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(path: str | Path, check_files: bool = True, skip_invalid: bool = False, decode: bool = False,
                  allowed_roots: Sequence[str | Path] = ()):
    """Read and validate a JSONL manifest.

    Args:
        path: the manifest file.
        allowed_roots: folders besides the manifest's own that image and mask paths may resolve into (e.g. the
            dataset folder an adapter read); a path resolving anywhere else makes its row invalid, naming it.
        check_files: check that images and masks exist and are readable, and that mask shapes equal image shapes
            (file headers: PIL, DICOM without pixels, NIfTI header; DICOM series folders are read with MONAI).
        skip_invalid: return the valid rows and the errors instead of raising (the count is logged).
        decode: with ``check_files``, decode every image and mask fully (slow; finds truncated pixel data).

    Returns:
        ``list[Sample]`` with image and mask paths made absolute (relative ones are relative to the manifest's
        folder); with ``skip_invalid``, ``(samples, errors)`` where ``errors`` is a list of ``(line, reason)``.

    Raises:
        ManifestError: (without ``skip_invalid``) any invalid row, or no row at all; the message names the file,
            the 1-based line and the problem of every invalid row.
        FileNotFoundError: the manifest itself does not exist.
    """
    path = Path(path)
    base = path.absolute().parent
    roots = [Path(os.path.realpath(base))] + [Path(os.path.realpath(r)) for r in allowed_roots]
    files = _FileChecker(decode) if check_files else None
    samples: list[Sample] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    rows = 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            rows += 1
            try:
                sample = sample_from_dict(_parse_json(_decode_line(raw)))
                _check_inside(sample, base, roots)
                sample = _resolve(sample, base)
                validate_sample(sample)
                if sample.sample_id in first_line:
                    first = first_line[sample.sample_id]
                    raise _Invalid(f"duplicate sample_id {_short(sample.sample_id)} (first on line {first})")
                if files is not None:
                    files.check(sample)
            except _Invalid as err:
                errors.append((line_no, str(err)))
                continue
            first_line[sample.sample_id] = line_no
            samples.append(sample)
    if not rows:
        errors.append((1, "the manifest holds no rows (empty file)"))
    if skip_invalid:
        if errors:
            log.warning("skipped %d invalid row(s) of %d in %s", len(errors), len(errors) + len(samples), path)
        return samples, errors
    if errors:
        raise ManifestError(path, errors)
    return samples


# ---------------------------------------------------------------------------------------------- parsing


def _short(value, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length named (a huge value stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Invalid(f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None


def _parse_json(line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise _Invalid(f"not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise _Invalid("not valid JSON (nested too deeply)") from None
    if not isinstance(row, dict):
        raise _Invalid(f"a row must be a JSON object, got {type(row).__name__}")
    return row


def _fields(row: dict, cls: type, where: str) -> dict:
    if not isinstance(row, dict):
        raise _Invalid(f"{where} must be a JSON object, got {type(row).__name__}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(row) - set(names))
    if unknown:
        raise _Invalid(f"{where} has unknown field(s) {unknown}; known: {names}")
    missing = [f.name for f in fields(cls)
               if f.name not in row and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise _Invalid(f"{where} lacks the field(s) {missing}")
    return row


def _typed(value, kind, where: str, optional: bool = False):
    if value is None and optional:
        return None
    ok = isinstance(value, kind) and not (kind in (int, float, (int, float)) and isinstance(value, bool))
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else "number"
        raise _Invalid(f"{where} must be {'null or ' if optional else ''}a {names}, got {_short(value)}")
    return value


def sample_from_dict(row: dict) -> Sample:
    """A :class:`Sample` from its ``dataclasses.asdict`` form, checking field names and JSON types.

    Raises:
        ValueError (internal subclass): unknown or missing fields, or a value of the wrong type.
    """
    _fields(row, Sample, "the row")
    images = _typed(row["images"], list, "images")
    boxes = _typed(row.get("boxes", []), list, "boxes")
    masks = _typed(row.get("masks", []), list, "masks")
    return Sample(
        sample_id=_typed(row["sample_id"], str, "sample_id"),
        source=_typed(row["source"], str, "source"),
        task=_typed(row["task"], str, "task"),
        imaging=_typed(row["imaging"], str, "imaging"),
        images=tuple(_image(r, i) for i, r in enumerate(images)),
        instruction=_typed(row["instruction"], str, "instruction"),
        answer=_typed(row["answer"], str, "answer"),
        context=_typed(row.get("context"), str, "context", optional=True),
        boxes=tuple(_box(r, i) for i, r in enumerate(boxes)),
        masks=tuple(_mask(r, i) for i, r in enumerate(masks)),
        instruction_fields=_string_map(row.get("instruction_fields"), "instruction_fields"),
        absent_classes=tuple(_typed(v, str, "absent_classes[]")
                             for v in _typed(row.get("absent_classes", []), list, "absent_classes")),
    )


def _string_map(value, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    _typed(value, dict, where)
    for key, item in value.items():
        _typed(item, str, f"{where}.{key}")
    return dict(value)


def _image(row: dict, i: int) -> ImageRef:
    where = f"images[{i}]"
    _fields(row, ImageRef, where)
    return ImageRef(path=_typed(row["path"], str, f"{where}.path"),
                    modality=_typed(row["modality"], str, f"{where}.modality"),
                    role=_typed(row.get("role", "current"), str, f"{where}.role"))


def _box(row: dict, i: int) -> BoxTarget:
    where = f"boxes[{i}]"
    _fields(row, BoxTarget, where)
    xyxy = _typed(row["xyxy"], list, f"{where}.xyxy")
    if len(xyxy) != 4:
        raise _Invalid(f"{where}.xyxy must have 4 numbers (x0, y0, x1, y1), got {len(xyxy)}")
    return BoxTarget(label=_typed(row["label"], str, f"{where}.label"),
                     xyxy=tuple(float(_typed(v, (int, float), f"{where}.xyxy")) for v in xyxy),
                     image_index=_typed(row.get("image_index", 0), int, f"{where}.image_index"))


def _mask(row: dict, i: int) -> MaskTarget:
    where = f"masks[{i}]"
    _fields(row, MaskTarget, where)
    return MaskTarget(path=_typed(row["path"], str, f"{where}.path"), label=_typed(row["label"], str, f"{where}.label"),
                      image_index=_typed(row.get("image_index", 0), int, f"{where}.image_index"),
                      value=_typed(row.get("value"), int, f"{where}.value", optional=True))


def _resolve(sample: Sample, base: Path) -> Sample:
    def absolute(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(base, p)

    return replace(sample, images=tuple(replace(r, path=absolute(r.path)) for r in sample.images),
                   masks=tuple(replace(m, path=absolute(m.path)) for m in sample.masks))


def _check_inside(sample: Sample, base: Path, roots: list[Path]) -> None:
    """Refuse a sample whose image or mask path (as written, relative to ``base``) resolves outside every root
    (the manifest's folder first)."""
    for what, refs in (("image", sample.images), ("mask", sample.masks)):
        for i, ref in enumerate(refs):
            real = Path(os.path.realpath(os.path.join(base, ref.path)))
            if not any(real.is_relative_to(root) for root in roots):
                others = f" or the allowed roots {[str(r) for r in roots[1:]]}" if len(roots) > 1 else ""
                raise _Invalid(f"{what}s[{i}].path {_short(ref.path)} resolves to {real}, outside the manifest's "
                               f"folder {roots[0]}{others}; not opened (allow its folder with --allow-root, or "
                               "allowed_roots in a training config)")


# ---------------------------------------------------------------------------------------------- validation


def validate_sample(sample: Sample) -> None:
    """Check a sample without touching files: task and imaging type, image roles and modalities, image identifiers
    in the instruction, target indices, boxes in ``[0, 1]``, and one target per task token.

    Raises:
        ValueError (internal subclass, message = the problem): the first problem found.
    """
    try:
        Task(sample.task)
    except ValueError:
        raise _Invalid(f"unknown task {_short(sample.task)}; known: {[t.value for t in Task]}") from None
    try:
        imaging = ImagingType(sample.imaging)
    except ValueError:
        known = [t.value for t in ImagingType]
        raise _Invalid(f"unknown imaging type {_short(sample.imaging)}; known: {known}") from None
    if not sample.images:
        raise _Invalid("no images")
    for i, image in enumerate(sample.images):
        if image.modality != imaging.value:
            raise _Invalid(f"images[{i}].modality {_short(image.modality)} differs from the sample's imaging "
                           f"{imaging.value!r}")
        if image.role not in ROLES:
            raise _Invalid(f"images[{i}].role {_short(image.role)} is not one of {list(ROLES)}")
    try:
        check_image_references(sample.instruction, len(sample.images))
    except ValueError as err:
        raise _Invalid(f"instruction: {err}") from None
    _validate_wording(sample)
    for kind, targets in (("boxes", sample.boxes), ("masks", sample.masks)):
        for i, target in enumerate(targets):
            if not 0 <= target.image_index < len(sample.images):
                raise _Invalid(f"{kind}[{i}].image_index {target.image_index} out of range for "
                               f"{len(sample.images)} image(s)")
    for i, box in enumerate(sample.boxes):
        x0, y0, x1, y1 = box.xyxy
        if not all(0.0 <= v <= 1.0 for v in box.xyxy):
            raise _Invalid(f"boxes[{i}] ({_short(box.label)}) {list(box.xyxy)} is outside [0, 1] (normalized xyxy)")
        if x0 > x1 or y0 > y1:
            raise _Invalid(f"boxes[{i}] ({_short(box.label)}) {list(box.xyxy)} has x0 > x1 or y0 > y1")
    seg_token, other = (SEG3D_TOKEN, SEG2D_TOKEN) if imaging.is_3d else (SEG2D_TOKEN, SEG3D_TOKEN)
    if other in sample.answer:
        raise _Invalid(f"answer of a {'3D' if imaging.is_3d else '2D'} sample contains {other}")
    for token, targets, kind in ((DET_TOKEN, sample.boxes, "box"), (seg_token, sample.masks, "mask")):
        count = sample.answer.count(token)
        if count != len(targets):
            raise _Invalid(f"answer has {count} {token} but {len(targets)} {kind} target(s)")


def _validate_wording(sample: Sample) -> None:
    """``instruction_fields`` fill every Table 5 template of the task and refer to the images; ``absent_classes``
    only for detection, none of them a box label."""
    if sample.absent_classes and sample.task != Task.DETECTION.value:
        raise _Invalid(f"absent_classes are for detection samples, not {sample.task}")
    overlap = sorted(set(sample.absent_classes) & {b.label for b in sample.boxes})
    if overlap:
        raise _Invalid(f"absent_classes {overlap} also have boxes")
    if sample.instruction_fields is None:
        return
    task = Task(sample.task)
    if task not in TEMPLATES:
        raise _Invalid(f"instruction_fields given for task {task.value}, which has no Table 5 templates "
                       "(its questions are used as written)")
    fields_ = dict(sample.instruction_fields)
    if task is Task.DETECTION and sample.masks:
        raise _Invalid("a detection sample whose classes are re-drawn has no masks (its answer is rebuilt from "
                       "boxes and absent_classes)")
    if task is Task.DETECTION:
        fields_["target"] = "x"  # the target is the classes drawn each iteration
    try:
        for index in range(len(TEMPLATES[task])):
            check_image_references(instruction(task, index=index, **fields_), len(sample.images))
    except ValueError as err:
        raise _Invalid(f"instruction_fields {_short(sample.instruction_fields)}: {err}") from None


class _FileChecker:
    """Checks images and masks on disk; caches each path's shape (an image is often shared by many rows)."""

    def __init__(self, decode: bool):
        self.decode = decode
        self.shapes: dict[tuple[str, bool], tuple[int, ...] | str] = {}

    def check(self, sample: Sample) -> None:
        image_shapes = [self.shape(r.path, sample.is_3d, f"images[{i}]", image=True)
                        for i, r in enumerate(sample.images)]
        for i, mask in enumerate(sample.masks):
            shape = self.shape(mask.path, sample.is_3d, f"masks[{i}]", image=False)
            expected = image_shapes[mask.image_index]
            if shape != expected:
                raise _Invalid(f"masks[{i}] ({_short(mask.label)}) has shape {list(shape)} but "
                               f"images[{mask.image_index}] "
                               f"has {list(expected)}: {mask.path}")

    def shape(self, path: str, is_3d: bool, where: str, image: bool) -> tuple[int, ...]:
        key = (path, image)
        if key not in self.shapes:
            try:
                self.shapes[key] = self._read(Path(path), is_3d, image)
            except FileNotFoundError:
                self.shapes[key] = "file not found"
            except Exception as err:  # any reader error means unreadable
                self.shapes[key] = f"unreadable ({type(err).__name__}: {err})"
        result = self.shapes[key]
        if isinstance(result, str):
            raise _Invalid(f"{where} {result}: {path}")
        return result

    def _read(self, path: Path, is_3d: bool, image: bool) -> tuple[int, ...]:
        if not path.exists():
            raise FileNotFoundError(path)
        name = path.name.lower()
        if is_3d:
            if path.is_dir() and image:
                return tuple(load_volume(path).shape[1:])
            if not name.endswith(_NIFTI):
                raise ValueError("a 3D " + ("image must be a NIfTI file or a DICOM series folder" if image
                                             else "mask must be a NIfTI file"))
            if self.decode:
                return tuple(load_volume(path).shape[1:])
            import nibabel

            shape = tuple(int(s) for s in nibabel.load(path).shape)
            if len(shape) != 3:
                raise ValueError(f"not a 3D volume (shape {list(shape)})")
            return shape
        if not image and not name.endswith(".png"):
            raise ValueError("a 2D mask must be a PNG file")
        if name.endswith(_RASTER):
            with Image.open(path) as img:
                if self.decode:
                    return np.asarray(img).shape[:2]
                shape = img.height, img.width
                _check_complete(img)
                return shape
        if self.decode:
            return load_rgb(path).shape[:2]
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "Rows" not in ds or "Columns" not in ds:
            raise ValueError("DICOM file without Rows/Columns (not an image)")
        return int(ds.Rows), int(ds.Columns)


def _check_complete(img: Image.Image) -> None:
    """Raise ``OSError`` for a truncated PNG (chunk CRCs, :meth:`PIL.Image.Image.verify`, nothing decompressed) or
    JPEG (its scans decoded at 1/8 scale: DC coefficients only); other formats are left to ``decode``."""
    if img.format == "PNG":
        img.verify()
    elif img.format == "JPEG":
        img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
        img.load()
