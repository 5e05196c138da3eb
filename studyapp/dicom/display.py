"""Server-side display pipeline: a DICOM frame -> an 8-bit image for the viewer.

Grayscale frames follow DICOM PS3.3 C.11 in order: Modality LUT (C.11.1: Rescale Slope/Intercept or Modality LUT
Sequence) -> VOI LUT (C.11.2: VOI LUT Sequence preferred, else the first Window Center/Width; an estimate from the
frame's values when the file has neither) -> Presentation LUT Shape / MONOCHROME1 inversion (C.11.6, C.7.6.3.1.2),
applied AFTER the VOI -> uint8. Per-frame and shared functional groups (C.7.6.16.2.9 Pixel Value Transformation,
C.7.6.16.2.10 Frame VOI LUT) take precedence over the top-level attributes.

The arithmetic is pydicom's (``apply_modality_lut``, ``apply_voi_lut``); for speed it is evaluated once over the
range of stored values into one lookup table, and a frame is displayed with a single indexing pass. Decoded frames
are kept in a bounded LRU cache keyed by file and frame, so a window/level change builds a new table but never
decodes the file again. Colour frames (RGB; YBR converted to RGB by pydicom) pass through unchanged.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.pixels.processing import apply_windowing
from pydicom.pixels.utils import get_nr_frames

from studyapp.dicom import codecs
from studyapp.dicom.geometry import frame_size_problem

codecs.register()

Window = tuple[float, float]
"""(Window Center, Window Width) in modality units (e.g. HU for CT), DICOM PS3.3 C.11.2.1.2."""

MAX_LUT_ENTRIES = 1 << 16
"""Frames whose stored values span more than this are mapped value by value instead of through a table."""

CACHE_BYTES = 512 * 1024 * 1024
"""Upper bound on the memory the decoded-frame cache holds."""

_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
_SAMPLE_PIXELS = 1 << 16
_MODALITY_KEYWORDS = ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence")
_VOI_KEYWORDS = ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence")

CT_PRESETS: dict[str, Window] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
"""Common CT windows in HU (center, width)."""

_PROJECTION_MODALITIES = ("CR", "DX", "DR", "RG", "MG", "PX")


class UndecodableImageError(Exception):
    """The pixel data of a file cannot be decoded or displayed; the message names the file and transfer syntax."""


class NoImageFileError(UndecodableImageError):
    """The instance has no stored file (an empty file path: a study restored from an archive written with
    ``--no-images``, without ``restore --images``); the message names no path."""


#: What the viewer says for an instance without a stored file (:class:`NoImageFileError`).
NO_IMAGE_FILE = "no image file stored for this case (restored without images)"


def stored_file(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path`; an empty path (no file stored) is refused, never read as the working
    folder.

    Raises:
        NoImageFileError: ``path`` is empty.
    """
    if not os.fspath(path):
        raise NoImageFileError(NO_IMAGE_FILE)
    return Path(path)


class FrameTooLargeError(UndecodableImageError):
    """A frame declares more than ``geometry.MAX_FRAME_PIXELS`` pixels; it is refused before anything is allocated."""


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame, ready to be mapped to display values any number of times.

    Attributes:
        values: grayscale: (H, W) unsigned integers with ``stored value = values + values_offset``; colour:
            (H, W, 3) uint8 RGB.
        values_offset: added to ``values`` to get the stored pixel value (the smallest stored value for signed
            frames, else 0).
        lut_size: number of entries a display table needs (``values.max() + 1``); ``None`` when the stored values
            span more than ``MAX_LUT_ENTRIES`` (values are then mapped directly) and for colour frames.
        lut_dataset: the attributes the display pipeline reads for this frame (Photometric Interpretation, Bits
            Stored, Pixel Representation, Presentation LUT Shape, Modality LUT and VOI LUT modules, functional
            groups resolved); ``None`` for colour frames.
        default_window: the file's first Window Center/Width for this frame, else the estimate used when the file
            has no VOI (0.5th-99.5th percentile of modality values); ``None`` for colour frames.
        modality_sample: float64 sample (at most 65,536 values) of the frame's modality values, for presets.
        modality: (0008,0060) Modality.
        source: the file path (or SOP Instance UID) for messages.
    """

    values: np.ndarray
    values_offset: int
    lut_size: int | None
    lut_dataset: Dataset | None
    default_window: Window | None
    modality_sample: np.ndarray | None
    modality: str
    source: str

    @property
    def is_colour(self) -> bool:
        """True for RGB frames, which are displayed as stored."""
        return self.lut_dataset is None

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays of this frame."""
        sample = 0 if self.modality_sample is None else self.modality_sample.nbytes
        return self.values.nbytes + sample


def number_of_frames(ds: Dataset) -> int:
    """(0028,0008) Number of Frames of ``ds``, 1 when absent or empty."""
    return get_nr_frames(ds, warn=False)


def _source(ds: Dataset) -> str:
    filename = getattr(ds, "filename", None)
    if isinstance(filename, (str, os.PathLike)) and str(filename):
        return str(filename)
    return f"SOP Instance {ds.get('SOPInstanceUID', '(no UID)')}"


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return f"{uid.name} ({uid})" if uid else "an unknown transfer syntax"


def functional_group_items(ds: Dataset, frame: int) -> list[Dataset]:
    """Shared then per-frame functional group items of ``frame`` (PS3.3 C.7.6.16), least specific first."""
    items = []
    for keyword, index in (("SharedFunctionalGroupsSequence", 0), ("PerFrameFunctionalGroupsSequence", frame)):
        sequence = ds.get(keyword)
        if sequence and len(sequence) > index:
            items.append(sequence[index])
    return items


def _empty_like(ds: Dataset) -> Dataset:
    """An empty dataset with the file meta / encoding of ``ds`` (pydicom reads OW LUT Data with it)."""
    out = Dataset()
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta
    else:
        out.set_original_encoding(*ds.original_encoding)
    return out


def _copy(ctx: Dataset) -> Dataset:
    """A copy of ``ctx`` with its own elements (``copy.copy`` of a Dataset shares them)."""
    out = _empty_like(ctx)
    for elem in ctx:
        out.add(copy.copy(elem))
    return out


def lut_dataset(ds: Dataset, frame: int = 0) -> Dataset:
    """A small dataset with the attributes the grayscale display pipeline reads for ``frame`` of ``ds``.

    Modality LUT attributes come from the most specific of: per-frame Pixel Value Transformation Sequence,
    shared Pixel Value Transformation Sequence, top level; VOI attributes likewise from the Frame VOI LUT Sequence
    (PS3.3 C.7.6.16.2.9-10). ``ds`` is not modified.

    Args:
        ds: the image dataset.
        frame: 0-based frame index.

    Returns:
        A new Dataset sharing ``ds.file_meta`` (needed to read OW LUT data).
    """
    ctx = _empty_like(ds)
    for keyword in ("PhotometricInterpretation", "BitsStored", "PixelRepresentation", "PresentationLUTShape"):
        if keyword in ds:
            setattr(ctx, keyword, ds[keyword].value)

    groups = functional_group_items(ds, frame)
    for keywords, sequence_keyword in (
        (_MODALITY_KEYWORDS, "PixelValueTransformationSequence"),
        (_VOI_KEYWORDS, "FrameVOILUTSequence"),
    ):
        sources = [ds] + [item[sequence_keyword][0] for item in groups if item.get(sequence_keyword)]
        chosen = next(
            (src for src in reversed(sources) if any(src.get(keyword) is not None for keyword in keywords)), None
        )
        if chosen is None:
            continue
        for keyword in keywords:
            if chosen.get(keyword) is not None:
                setattr(ctx, keyword, chosen[keyword].value)
    if not ("RescaleSlope" in ctx and "RescaleIntercept" in ctx):
        ctx.pop("RescaleSlope", None)
        ctx.pop("RescaleIntercept", None)
    return ctx


def _has_voi(ctx: Dataset) -> bool:
    return bool(ctx.get("VOILUTSequence")) or ("WindowCenter" in ctx and "WindowWidth" in ctx)


def _first(value) -> float:
    """First value of a possibly multi-valued DS element (PS3.3 C.11.2.1.2: several windows, take the first)."""
    return float(value[0]) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else float(value)


def with_window(ctx: Dataset, window: Window) -> Dataset:
    """A copy of ``ctx`` whose VOI is ``window`` (center, width in modality units) instead of the file's VOI.

    Raises:
        ValueError: the width is not positive.
    """
    center, width = float(window[0]), float(window[1])
    if not width > 0:
        raise ValueError(f"Window width must be > 0, got center={center}, width={width}")
    out = _copy(ctx)
    out.pop("VOILUTSequence", None)
    out.WindowCenter = center
    out.WindowWidth = width
    return out


def _voi_output_range(ctx: Dataset) -> tuple[float, float]:
    """(min, max) of what ``apply_voi_lut`` returns for ``ctx``, the range mapped to 0..255."""
    if ctx.get("VOILUTSequence"):
        bits = int(ctx.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    # pydicom sends values far outside the window to the two ends of its output range (PS3.3 C.11.2.1.2).
    with np.errstate(over="ignore"):
        low, high = apply_windowing(np.array([-1e300, 1e300]), _copy(ctx))
    return float(low), float(high)


def is_inverted(ctx: Dataset) -> bool:
    """MONOCHROME1 (C.7.6.3.1.2) or Presentation LUT Shape INVERSE (C.11.6): minimum value displays white."""
    shape = str(ctx.get("PresentationLUTShape", "")).strip().upper()
    return ctx.get("PhotometricInterpretation") == "MONOCHROME1" or shape == "INVERSE"


def modality_values(stored: np.ndarray, ctx: Dataset) -> np.ndarray:
    """Stored values -> modality values (PS3.3 C.11.1: Modality LUT Sequence or Rescale Slope/Intercept; the
    identity without either), pydicom's ``apply_modality_lut``; ``ctx`` is not modified.

    Returns:
        float64 (rescaled) or integer (LUT or identity) array of the shape of ``stored``.
    """
    return apply_modality_lut(stored, _copy(ctx))


def display_values(stored: np.ndarray, ctx: Dataset) -> np.ndarray:
    """Map stored pixel values to 8-bit display values with pydicom's float pipeline.

    Modality LUT (PS3.3 C.11.1) -> VOI LUT (C.11.2; ``ctx`` must hold a VOI LUT Sequence or Window Center/Width)
    -> scale the VOI output range to 0..255 -> invert for MONOCHROME1 / Presentation LUT Shape INVERSE (C.11.6).

    Args:
        stored: integer array of stored values, any shape.
        ctx: a dataset from ``lut_dataset``/``with_window`` (not modified).

    Returns:
        uint8 array of the same shape.

    Raises:
        ValueError: invalid window (e.g. width < 1 for LINEAR) or VOI LUT Function, from pydicom.
    """
    ctx = _copy(ctx)  # pydicom normalises attribute types in place
    modality = modality_values(stored, ctx)
    if ctx.get("VOILUTSequence") and not np.issubdtype(modality.dtype, np.integer):
        modality = np.rint(modality).astype(np.int64)
    voi = apply_voi_lut(modality, ctx)
    low, high = _voi_output_range(ctx)
    scaled = (np.asarray(voi, dtype=np.float64) - low) * (255.0 / (high - low))
    if is_inverted(ctx):
        scaled = 255.0 - scaled
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def estimate_window(modality_values: np.ndarray, low_percentile: float = 0.5, high_percentile: float = 99.5) -> Window:
    """Window (center, width) spanning the given percentiles of ``modality_values``; min..max if that is empty.

    Returns:
        (center, width) with width > 0 (1.0 for a constant image).
    """
    low, high = np.percentile(modality_values, [low_percentile, high_percentile])
    if high <= low:
        low, high = float(np.min(modality_values)), float(np.max(modality_values))
    if high <= low:
        return float(low), 1.0
    return float((low + high) / 2.0), float(high - low)


def _decode(ds: Dataset, frame: int) -> np.ndarray:
    frames = number_of_frames(ds)
    if not 0 <= frame < frames:
        raise IndexError(
            f"frame {frame} requested but {_source(ds)} has {frames} frame(s) ((0028,0008) Number of Frames)"
        )
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = meta.get("TransferSyntaxUID", "") if meta is not None else ""
    errors = []
    for plugin in codecs.decoding_plugins(transfer_syntax):
        try:
            return pixel_array(ds, index=frame, decoding_plugin=plugin)
        except Exception as exc:  # decoders raise many types (ValueError, RuntimeError, NotImplementedError, ...)
            errors.append(f"{plugin}: {exc}" if plugin else str(exc))
    raise UndecodableImageError(
        f"Cannot decode frame {frame} of {_source(ds)} (transfer syntax {_transfer_syntax(ds)}): " + "; ".join(errors)
    )


def decode_frame(ds: Dataset, frame: int = 0) -> DecodedFrame:
    """Decode ``frame`` of ``ds`` and prepare it for display.

    Args:
        ds: a dataset read with its pixel data.
        frame: 0-based frame index.

    Returns:
        A ``DecodedFrame``.

    Raises:
        IndexError: ``frame`` is outside 0..NumberOfFrames-1.
        FrameTooLargeError: Rows x Columns is above ``geometry.MAX_FRAME_PIXELS`` (nothing is decoded).
        UndecodableImageError: no decoder handles the pixel data, the data is truncated or corrupt, the
            (0028,0004) Photometric Interpretation is not displayable (e.g. PALETTE COLOR), or the pixel data is
            floating point.
    """
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    source = _source(ds)
    modality = str(ds.get("Modality", ""))
    if photometric not in _GRAYSCALE + _COLOUR:
        raise UndecodableImageError(
            f"Cannot display {source}: (0028,0004) Photometric Interpretation {photometric or '(missing)'} "
            "is not supported"
        )
    too_large = frame_size_problem(ds)
    if too_large is not None:
        raise FrameTooLargeError(f"Cannot display {source}: {too_large}; the viewer does not decode such frames")
    arr = _decode(ds, frame)
    if photometric in _COLOUR:
        if arr.dtype != np.uint8:
            shift = max(int(ds.get("BitsStored", 8)) - 8, 0)
            arr = (arr >> shift).astype(np.uint8)
        return DecodedFrame(arr, 0, None, None, None, None, modality, source)

    if arr.dtype.kind == "f":
        raise UndecodableImageError(f"Cannot display {source}: Float/Double Float Pixel Data is not supported")
    ctx = lut_dataset(ds, frame)
    stored_min, stored_max = int(arr.min()), int(arr.max())
    if arr.dtype.kind == "u" and stored_max < MAX_LUT_ENTRIES:
        offset, values, lut_size = 0, arr, stored_max + 1  # indexed by the stored value itself
    elif stored_max - stored_min < MAX_LUT_ENTRIES:  # signed or high values: index from the minimum
        offset, lut_size = stored_min, stored_max - stored_min + 1
        values = (arr.astype(np.int64) - offset).astype(np.uint16 if lut_size > 256 else np.uint8)
    else:
        offset, values, lut_size = 0, arr, None

    step = max(1, int(np.sqrt(arr.size / _SAMPLE_PIXELS)))
    sample = np.asarray(apply_modality_lut(values[::step, ::step].astype(np.int64) + offset, ctx), dtype=np.float64)
    if "WindowCenter" in ctx and "WindowWidth" in ctx:
        default = (_first(ctx.WindowCenter), _first(ctx.WindowWidth))
    else:
        default = estimate_window(sample)
        if not _has_voi(ctx):
            ctx = with_window(ctx, default)
            ctx.VOILUTFunction = "LINEAR_EXACT"  # C.11.2.1.3.2: any positive width, also fractional
    return DecodedFrame(values, offset, lut_size, ctx, default, sample.ravel(), modality, source)


def display_lut(decoded: DecodedFrame, window: Window | None = None) -> np.ndarray:
    """The table mapping ``decoded.values`` to 8-bit display values (entry i is stored value i + values_offset).

    Args:
        decoded: a grayscale frame with ``lut_size`` set.
        window: (center, width) replacing the file's VOI; ``None`` keeps the file's VOI (or the estimate).

    Returns:
        uint8 array of shape (lut_size,).

    Raises:
        ValueError: the frame has no table (colour, or stored values spanning more than ``MAX_LUT_ENTRIES``), or
            the window is invalid.
    """
    if decoded.lut_size is None:
        raise ValueError(f"{decoded.source}: no lookup table for colour or very wide-range frames")
    ctx = decoded.lut_dataset if window is None else with_window(decoded.lut_dataset, window)
    return display_values(np.arange(decoded.lut_size, dtype=np.int64) + decoded.values_offset, ctx)


def to_display(decoded: DecodedFrame, window: Window | None = None) -> np.ndarray:
    """8-bit display image of a decoded frame: one table lookup per pixel (no decoding; tiny or very wide-range
    frames are mapped value by value).

    Args:
        decoded: from ``decode_frame``/``load_frame``.
        window: (center, width) in modality units replacing the file's VOI; ignored for colour.

    Returns:
        uint8 (H, W) for grayscale, (H, W, 3) for colour.

    Raises:
        ValueError: the window width is not positive (or < 1 for a LINEAR VOI LUT Function).
    """
    if decoded.is_colour:
        return decoded.values
    if decoded.lut_size is None or decoded.values.size <= decoded.lut_size:  # no table, or one larger than the image
        ctx = decoded.lut_dataset if window is None else with_window(decoded.lut_dataset, window)
        return display_values(decoded.values.astype(np.int64) + decoded.values_offset, ctx)
    # values index the table by construction; "clip" skips numpy's bounds check and is the fastest gather
    return display_lut(decoded, window).take(decoded.values, mode="clip")


def render_frame(ds: pydicom.Dataset, frame: int = 0, window: tuple[float, float] | None = None) -> np.ndarray:
    """Render ``frame`` of ``ds`` to an 8-bit display image (PS3.3 C.11 pipeline; see module docstring).

    Decodes on every call; viewers that re-render the same file should use ``render_file`` (cached).

    Args:
        ds: dataset with pixel data.
        frame: 0-based frame index.
        window: (Window Center, Window Width) in modality units overriding the file's VOI.

    Returns:
        uint8 (H, W) for grayscale, (H, W, 3) RGB for colour.

    Raises:
        IndexError: no such frame.
        UndecodableImageError: the pixel data cannot be decoded (message names file and transfer syntax).
        ValueError: invalid window.
    """
    return to_display(decode_frame(ds, frame), window)


class FrameCache:
    """Least-recently-used decoded frames, bounded by their total bytes (the newest item is always kept);
    safe across threads."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, DecodedFrame] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> DecodedFrame | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple, item: DecodedFrame) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = item
            self._bytes += item.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        """Forget every item."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


frame_cache = FrameCache(CACHE_BYTES)
"""Decoded frames keyed by (resolved path, modification time, size, frame)."""


def read_image(path: str | os.PathLike) -> Dataset:
    """Read a DICOM file with its pixel data (not yet decoded).

    Raises:
        NoImageFileError: ``path`` is empty (no file stored).
        UndecodableImageError: the file is missing or not DICOM.
    """
    path = stored_file(path)
    try:
        return pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise UndecodableImageError(f"Cannot read {path} as DICOM: {exc}") from exc


def load_frame(path: str | os.PathLike, frame: int = 0, max_side: int | None = None) -> DecodedFrame:
    """``decode_frame`` for a file, through the bounded LRU cache (a changed file is decoded again).

    Args:
        path: DICOM file.
        frame: 0-based frame index.
        max_side: if given, the frame scaled down to this longer side (``downsample``), cached as well.

    Raises:
        IndexError, UndecodableImageError: as ``decode_frame``/``read_image``.
    """
    resolved = stored_file(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise UndecodableImageError(f"Cannot read {path}: {exc}") from exc
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, frame, max_side)
    decoded = frame_cache.get(key)
    if decoded is None:
        if max_side is None:
            decoded = decode_frame(read_image(resolved), frame)
        else:
            decoded = downsample(load_frame(resolved, frame), max_side)
        frame_cache.put(key, decoded)
    return decoded


def render_file(
    path: str | os.PathLike,
    frame: int = 0,
    window: tuple[float, float] | None = None,
    max_side: int | None = None,
) -> np.ndarray:
    """``render_frame`` for a file path, decoding each frame once (cached); window changes only rebuild the table.

    Args:
        path, frame, window: as ``render_frame``.
        max_side: render at most this many pixels on the longer side (``downsample``; faster window changes
            for the viewer); ``None`` renders full size.

    Returns:
        uint8 (H, W) or (H, W, 3).

    Raises:
        IndexError, UndecodableImageError, ValueError: as ``render_frame``.
    """
    return to_display(load_frame(path, frame, max_side), window)


def window_presets(decoded: DecodedFrame) -> dict[str, Window]:
    """Named windows (center, width in modality units) for the viewer; empty for colour frames.

    Always ``default`` (the file's window, else the estimate) and ``wide`` (min..max). CT adds HU presets
    (``CT_PRESETS``: lung, mediastinum, soft tissue, bone, brain). Projection radiographs (CR, DX, ...) add
    percentile windows: ``lung`` (the lucent part: 2nd-75th percentile for MONOCHROME2, 25th-98th for MONOCHROME1
    where lucent is high), ``soft tissue`` (10th-90th percentile) and ``bone`` (the dense half: 50th-99.5th
    percentile for MONOCHROME2, 0.5th-50th for MONOCHROME1 where dense is low). Estimated windows are rounded
    (:func:`rounded_window`) so a reader can type them back.
    """
    if decoded.is_colour:
        return {}
    sample = decoded.modality_sample
    presets = {"default": decoded.default_window, "wide": rounded_window(estimate_window(sample, 0.0, 100.0))}
    if decoded.modality == "CT":
        presets.update(CT_PRESETS)
    elif decoded.modality in _PROJECTION_MODALITIES:
        dense_low = decoded.lut_dataset.get("PhotometricInterpretation") == "MONOCHROME1"
        percentiles = {"lung": (25.0, 98.0) if dense_low else (2.0, 75.0), "soft tissue": (10.0, 90.0),
                       "bone": (0.5, 50.0) if dense_low else (50.0, 99.5)}
        presets.update({name: rounded_window(estimate_window(sample, *p)) for name, p in percentiles.items()})
    return presets


def rounded_window(window: Window) -> Window:
    """``window`` (center, width) rounded for display: to whole units when the width is 20 or more, else to three
    significant digits; the width stays > 0."""
    center, width = window
    if width >= 20:
        return float(round(center)), float(max(1, round(width)))
    return float(f"{center:.3g}"), max(float(f"{width:.3g}"), 1e-6)


def _fitted_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is ``max_side``, for Pillow."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    scale = max_side / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_for_display(img: np.ndarray, max_side: int) -> np.ndarray:
    """Scale ``img`` so its longer side is ``max_side`` pixels, keeping the aspect ratio (Pillow, Lanczos).

    Args:
        img: uint8 (H, W) or (H, W, 3).
        max_side: target length of the longer side in pixels (>= 1); smaller images are enlarged.

    Returns:
        uint8 array with the longer side ``max_side``.

    Raises:
        ValueError: ``max_side`` < 1.
    """
    size = _fitted_size(*img.shape[:2], max_side)
    if size == (img.shape[1], img.shape[0]):
        return img
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0))


def downsample(decoded: DecodedFrame, max_side: int) -> DecodedFrame:
    """The frame scaled down so its longer side is at most ``max_side``, before the display table is applied.

    Stored values are resampled (Pillow, Lanczos after a box reduction) and rounded back into the table's index
    range, as viewers do when they interpolate raw values and apply the VOI per displayed pixel; a window change
    then costs one lookup per displayed pixel. Frames already small enough are returned unchanged.

    Raises:
        ValueError: ``max_side`` < 1.
    """
    height, width = decoded.values.shape[:2]
    size = _fitted_size(height, width, max_side)
    if max(height, width) <= max_side:
        return decoded
    if decoded.is_colour:
        return replace(decoded, values=resize_for_display(decoded.values, max_side))
    image = Image.fromarray(decoded.values.astype(np.float32), "F")
    resized = np.asarray(image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0))
    values = np.clip(np.rint(resized), decoded.values.min(), decoded.values.max())  # Lanczos overshoots
    return replace(decoded, values=values.astype(decoded.values.dtype))


def zoom(img: np.ndarray, factor: float, center: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """Crop ``img`` to a ``1/factor`` view around ``center`` (zoom in without resampling).

    Args:
        img: uint8 (H, W) or (H, W, 3).
        factor: magnification >= 1.
        center: (x, y) of the view centre as fractions of width and height; the view is kept inside the image.

    Returns:
        A view of ``img`` of about (H / factor, W / factor).

    Raises:
        ValueError: ``factor`` < 1.
    """
    if factor < 1:
        raise ValueError(f"zoom factor must be >= 1, got {factor}")
    height, width = img.shape[:2]
    crop_h, crop_w = max(1, round(height / factor)), max(1, round(width / factor))
    top = min(max(round(center[1] * height - crop_h / 2), 0), height - crop_h)
    left = min(max(round(center[0] * width - crop_w / 2), 0), width - crop_w)
    return img[top : top + crop_h, left : left + crop_w]
