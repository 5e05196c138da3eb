"""Coronal and sagittal reformats (multiplanar reconstruction, MPR) of an axially acquired series.

The slices are ordered by their Image Position (Patient) (0020,0032) projected on the slice normal (the cross
product of the row and column direction cosines of Image Orientation (Patient) (0020,0037), PS3.3 C.7.6.2.1.1),
and the stored values are stacked into a volume oriented for display in the patient coordinate system (LPS):
index 0 of the first axis is the most superior slice, of the second the most anterior row, of the third the
patient's rightmost column. So a coronal image (fixed row) shows the patient's right on screen left and superior
up; a sagittal image (fixed column) shows anterior on the left and superior up (the radiological convention).

Reformats keep the stored values of the axial voxels (no interpolation); ``display_rows`` repeats rows by
nearest neighbour so that the image has square pixels of the in-plane spacing.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

import numpy as np
import pydicom

from studyapp.dicom import browser, display, series_cache

PLANES = ("coronal", "sagittal")
MIN_SLICES = 3
"""Fewest slices a series needs to be reformatted."""
MAX_SPACING_DEVIATION = 0.1
"""Largest relative deviation of one slice gap from the median gap (a series with gaps is not reformatted)."""
AXIAL_NORMAL_MIN = 0.8
"""Smallest |z component| of the slice normal for a series to count as axial (about 37 degrees of tilt)."""
_GEOMETRY_FORMAT = 1
"""Version of the stored geometry (a new layout never reads an old one)."""
_GEOMETRIES_KEPT = 64
_geometries: OrderedDict[str, Geometry | ValueError] = OrderedDict()  # key -> geometry or refusal, in memory
_geometry_reads: dict[str, threading.Lock] = {}  # key -> held while its headers are read
_geometry_lock = threading.Lock()
_TRANSFORM = ("RescaleSlope", "RescaleIntercept", "PhotometricInterpretation", "PixelRepresentation", "BitsStored")


@dataclass(frozen=True)
class Geometry:
    """Where the slices of a series lie.

    Attributes:
        order: indices into the series' slices, most superior first.
        rows, columns: (0028,0010) Rows and (0028,0011) Columns of every slice.
        row_mm, column_mm: Pixel Spacing (0028,0030): distance between rows and between columns, in mm.
        slice_mm: distance between adjacent slices along the normal, in mm (median gap).
        flip_rows: the axial rows run posterior to anterior (flipped so that anterior comes first).
        flip_columns: the axial columns run left to right of the patient (flipped so that right comes first).
    """

    order: tuple[int, ...]
    rows: int
    columns: int
    row_mm: float
    column_mm: float
    slice_mm: float
    flip_rows: bool
    flip_columns: bool

    def count(self, plane: str) -> int:
        """Number of images of ``plane`` ("coronal": one per axial row, "sagittal": one per axial column)."""
        return {"coronal": self.rows, "sagittal": self.columns}[_plane(plane)]

    def display_rows(self, plane: str) -> int:
        """Rows of a displayed reformat of ``plane``: the slice extent at the in-plane pixel spacing."""
        in_plane = self.column_mm if _plane(plane) == "coronal" else self.row_mm
        return max(1, round(len(self.order) * self.slice_mm / in_plane))


def _plane(plane: str) -> str:
    if plane not in PLANES:
        raise ValueError(f"unknown reformat plane {plane!r}; expected one of {', '.join(PLANES)}")
    return plane


def geometry(slices: tuple[tuple[str, int], ...]) -> Geometry:
    """The geometry of a series of single-frame slices, read from the headers once: kept in memory and in the
    frame store on disk (``series_cache.store``, so a restarted server does not read the headers again), keyed by
    every file's path, modification time and size. Callers asking for a series while its headers are being read
    wait for that read instead of starting another.

    Args:
        slices: (file path, frame index) per slice, any order.

    Returns:
        A ``Geometry``.

    Raises:
        ValueError: the series cannot be reformatted, with the reason: a file that cannot be read, fewer than
            ``MIN_SLICES`` slices, multi-frame images, a slice without Image Position/Orientation (Patient) or
            Pixel Spacing, slices of different orientation or size, a Modality LUT Sequence, slices differing in
            Rescale Slope/Intercept or pixel format, a series that is not axial, two slices at one position, or
            unequal gaps.
    """
    return _keyed_geometry(tuple(slices))[1]


def _keyed_geometry(slices: tuple[tuple[str, int], ...]) -> tuple[str, Geometry]:
    """(``_geometry_key``, ``geometry``) of ``slices``."""
    key = _geometry_key(slices)
    found = _known_geometry(key)
    if found is None:
        with _geometry_lock:
            reading = _geometry_reads.setdefault(key, threading.Lock())
        with reading:  # one header read per series at a time
            found = _known_geometry(key)
            if found is None:
                found = _geometry(slices)
                _keep_geometry(key, found)
        with _geometry_lock:
            _geometry_reads.pop(key, None)
    if isinstance(found, ValueError):
        raise found
    return key, found


def _geometry_key(slices: tuple[tuple[str, int], ...]) -> str:
    """The store key of a series' geometry: every slice's resolved path, modification time, size and frame."""
    digest = hashlib.sha256(f"geometry {_GEOMETRY_FORMAT}".encode())
    for path, frame in slices:
        try:
            resolved = os.path.realpath(path)
            stat = os.stat(resolved)
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        digest.update(f"\0{resolved}\0{stat.st_mtime_ns}\0{stat.st_size}\0{int(frame)}".encode())
    return digest.hexdigest()


def _known_geometry(key: str) -> Geometry | ValueError | None:
    """The geometry (or refusal) kept under ``key``: memory, else the store; ``None`` when not kept."""
    with _geometry_lock:
        if key in _geometries:
            _geometries.move_to_end(key)
            return _geometries[key]
    store = series_cache.store()
    stored = store.get(key) if store is not None else None
    if stored is None:
        return None
    try:
        kept = json.loads(stored)
        found = ValueError(kept["refused"]) if "refused" in kept else Geometry(
            **{**kept["geometry"], "order": tuple(kept["geometry"]["order"])})
    except (ValueError, KeyError, TypeError):  # not a geometry this version wrote: read the headers again
        return None
    _keep_geometry(key, found, store=False)
    return found


def _keep_geometry(key: str, found: Geometry | ValueError, store: bool = True) -> None:
    with _geometry_lock:
        _geometries[key] = found
        while len(_geometries) > _GEOMETRIES_KEPT:
            _geometries.popitem(last=False)
    target = series_cache.store() if store else None
    if target is None or getattr(found, "transient", False):
        return
    kept = {"refused": str(found)} if isinstance(found, ValueError) else {"geometry": asdict(found)}
    try:
        target.put(key, json.dumps(kept).encode())
    except OSError:  # disk full or the folder gone: kept in memory
        pass


def _geometry(slices: tuple[tuple[str, int], ...]) -> Geometry | ValueError:
    """``_read_geometry``, its refusal returned (a file that cannot be read is marked ``transient``: not stored)."""
    try:
        return _read_geometry(slices)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        refusal = ValueError(f"a slice cannot be read: {exc}")
        refusal.transient = True
        return refusal
    except ValueError as exc:
        return exc


def _read_geometry(slices: tuple[tuple[str, int], ...]) -> Geometry:
    if len(slices) < MIN_SLICES:
        raise ValueError(f"a reformat needs at least {MIN_SLICES} slices, the series has {len(slices)}")
    if any(frame != 0 for _, frame in slices):
        raise ValueError("reformats of multi-frame images are not supported")
    tags = ["ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns", *_TRANSFORM,
            "ModalityLUTSequence"]
    headers = [pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags) for path, _ in slices]
    if any("ModalityLUTSequence" in ds for ds in headers):
        raise ValueError("reformats need Rescale Slope/Intercept, not a Modality LUT Sequence")
    if len({tuple(str(ds.get(k, "")) for k in _TRANSFORM) for ds in headers}) > 1:
        raise ValueError("the slices differ in Rescale Slope/Intercept or pixel format")
    try:
        orientation = np.array([[float(v) for v in ds.ImageOrientationPatient] for ds in headers])
        position = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
        spacing = np.array([[float(v) for v in ds.PixelSpacing] for ds in headers])
        size = {(int(ds.Rows), int(ds.Columns)) for ds in headers}
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"a slice lacks Image Orientation/Position (Patient) or Pixel Spacing: {exc}") from exc
    if orientation.shape != (len(slices), 6) or position.shape != (len(slices), 3):
        raise ValueError("malformed Image Orientation/Position (Patient)")
    if np.abs(orientation - orientation[0]).max() > 1e-3 or np.abs(spacing - spacing[0]).max() > 1e-3 or len(size) > 1:
        raise ValueError("the slices differ in orientation, pixel spacing or size")
    row_cosines, column_cosines = orientation[0, :3], orientation[0, 3:]
    normal = np.cross(row_cosines, column_cosines)
    if abs(normal[2]) < AXIAL_NORMAL_MIN:
        raise ValueError("the series is not axial; only axial series are reformatted")
    height = position @ normal * np.sign(normal[2])  # mm towards superior (+z in LPS)
    order = np.argsort(-height, kind="stable")
    gaps = -np.diff(height[order])
    median = float(np.median(gaps))
    if median <= 0 or gaps.min() <= 0:
        raise ValueError("two slices lie at the same position")
    if np.abs(gaps - median).max() > MAX_SPACING_DEVIATION * median:
        raise ValueError(f"the slice gaps are unequal ({gaps.min():.3g} to {gaps.max():.3g} mm)")
    (rows, columns), = size
    return Geometry(order=tuple(int(i) for i in order), rows=rows, columns=columns, row_mm=float(spacing[0, 0]),
                    column_mm=float(spacing[0, 1]), slice_mm=median,
                    flip_rows=bool(column_cosines[1] < 0), flip_columns=bool(row_cosines[0] < 0))


@dataclass(frozen=True)
class Volume:
    """The stored values of a series, oriented for display.

    Attributes:
        stored: (slices, rows, columns) stored values (int16 when they fit, else int32): superior first, anterior
            first, patient right first.
        decoded: the middle slice's ``DecodedFrame`` (its modality LUT and VOI hold for every slice).
        geometry: the series' ``Geometry``.
        low, high: the smallest and largest stored value.
    """

    stored: np.ndarray
    decoded: display.DecodedFrame
    geometry: Geometry
    low: int
    high: int

    @property
    def nbytes(self) -> int:
        """Memory held by the stacked values."""
        return self.stored.nbytes


VOLUME_CACHE_BYTES = 1024 * 1024 * 1024
"""Upper bound on the memory of the volumes kept for reformats (least recently used evicted); a series whose
volume alone is larger is not reformatted."""

_volumes = display.FrameCache(VOLUME_CACHE_BYTES)


def load_volume(slices: tuple[tuple[str, int], ...]) -> Volume:
    """The series' volume from the bounded volume cache, else stacked from the bodies of its slices (decoded in
    parallel, once: ``studyapp.dicom.series_cache``; a copy when they are kept).

    Raises:
        ValueError: as ``geometry``; colour slices; the volume would be larger than the volume cache
            (``VOLUME_CACHE_BYTES``).
        UndecodableImageError: a slice cannot be decoded.
    """
    slices = tuple(slices)
    key, geo = _keyed_geometry(slices)
    volume = _volumes.get(key)
    if volume is None:
        size = len(slices) * geo.rows * geo.columns * 2
        if size > _volumes.max_bytes:
            raise ValueError(f"the series ({size / 2**20:.0f} MB decoded) is larger than the reformat cache "
                             f"({_volumes.max_bytes / 2**20:.0f} MB); shown axial only")
        volume = _volume(slices, geo)
        _volumes.put(key, volume)
    return volume


def _volume(slices: tuple[tuple[str, int], ...], geo: Geometry) -> Volume:
    ordered = [slices[i] for i in geo.order]
    series_cache.prefetch(ordered, len(ordered) // 2)  # the slices not yet decoded, in the worker processes
    frames = [browser.unpack(series_cache.frame_body(path, frame)) for path, frame in ordered]
    if any(header["kind"] != "grayscale" for header, _ in frames):
        raise ValueError("reformats need grayscale slices")
    low = min(header["values_offset"] + int(arrays["values"].min()) for header, arrays in frames)
    high = max(header["values_offset"] + int(arrays["values"].max()) for header, arrays in frames)
    dtype = np.int16 if -(2**15) <= low and high < 2**15 else np.int32
    stored = np.empty((len(frames), geo.rows, geo.columns), dtype=dtype)
    for i, (header, arrays) in enumerate(frames):
        stored[i] = (arrays["values"].astype(np.int32) + header["values_offset"]).reshape(geo.rows, geo.columns)
    if geo.flip_rows:
        stored = stored[:, ::-1, :]
    if geo.flip_columns:
        stored = stored[:, :, ::-1]
    stored = np.ascontiguousarray(stored)
    stored.flags.writeable = False
    decoded = display.load_frame(*ordered[len(ordered) // 2])  # its modality LUT and VOI hold for every slice
    return Volume(stored=stored, decoded=decoded, geometry=geo, low=low, high=high)


def reformat(volume: Volume, plane: str, index: int) -> np.ndarray:
    """One reformatted image on the native grid (one row per axial slice, superior first).

    Args:
        volume: from ``load_volume``.
        plane: "coronal" (``index`` counts axial rows from anterior) or "sagittal" (axial columns from the
            patient's right).
        index: 0-based.

    Returns:
        (slices, columns) for coronal, (slices, rows) for sagittal: stored values (``Volume.stored``'s dtype).

    Raises:
        ValueError: unknown plane. IndexError: ``index`` outside 0 .. count - 1.
    """
    count = volume.geometry.count(plane)
    if not 0 <= index < count:
        raise IndexError(f"{plane} image {index} out of range 0..{count - 1}")
    return volume.stored[:, index, :] if plane == "coronal" else volume.stored[:, :, index]


def display_frame(volume: Volume, plane: str, index: int) -> display.DecodedFrame:
    """A reformat as a ``DecodedFrame`` with square pixels (rows repeated by nearest neighbour to
    ``Geometry.display_rows``), windowed with the middle slice's modality LUT and VOI.

    Raises:
        ValueError, IndexError: as ``reformat``; the stored values span more than ``display.MAX_LUT_ENTRIES``.
    """
    native = reformat(volume, plane, index)
    rows = volume.geometry.display_rows(plane)
    source_rows = np.minimum((np.arange(rows) + 0.5) * native.shape[0] // rows, native.shape[0] - 1).astype(int)
    shown = native[source_rows]
    low = volume.low
    values = shown.astype(np.int32) - low
    size = volume.high - low + 1
    if size > display.MAX_LUT_ENTRIES:
        raise ValueError(f"stored values span more than {display.MAX_LUT_ENTRIES} levels")
    base = volume.decoded
    sample = display.modality_values(shown.ravel()[:: max(1, shown.size // 65536)], base.lut_dataset)
    return replace(base, values=values.astype(np.uint16 if size > 256 else np.uint8), values_offset=low,
                   lut_size=size, modality_sample=np.asarray(sample, dtype=np.float64),
                   source=f"{plane} reformat {index + 1} of {base.source}")


def reformat_body(slices: list[tuple[str, int]], plane: str, index: int) -> bytes:
    """The ``browser.encode_file`` body of one coronal or sagittal reformat (``display_frame``) of a series, cut
    from its cached volume and kept in ``series_cache.bodies``; ``spacing`` is the in-plane Pixel Spacing of the
    square display grid (source "Pixel Spacing"); the header adds ``plane``.

    Raises:
        ValueError: the series cannot be reformatted (the reason), unknown plane.
        IndexError: ``index`` outside the plane's images. UndecodableImageError: a slice cannot be decoded.
    """
    volume = load_volume(tuple(slices))
    key = ("reformat", tuple(slices), id(volume), plane, index)
    cached = series_cache.bodies.get(key)
    if cached is None:
        decoded = display_frame(volume, plane, index)
        geo = volume.geometry
        in_plane = geo.column_mm if plane == "coronal" else geo.row_mm
        spacing = {"row_mm": len(geo.order) * geo.slice_mm / decoded.values.shape[0], "column_mm": in_plane,
                   "source": "Pixel Spacing"}
        cached = series_cache.Body(browser.encode(decoded, spacing, plane=plane))
        series_cache.bodies.put(key, cached)
    return cached.body
