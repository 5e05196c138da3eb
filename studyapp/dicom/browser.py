"""A frame as the browser viewer receives it: values once, then window/level on the client.

The browser gets, per frame, the index image of ``studyapp.dicom.display.DecodedFrame`` (stored value minus
``values_offset``, little-endian uint8/uint16) and, per index, the modality value (PS3.3 C.11.1, Modality LUT or
Rescale Slope/Intercept, as float64) and the display value under the file's own VOI (``display.display_lut``: VOI
LUT Sequence or Window Center/Width, Presentation LUT Shape and MONOCHROME1 applied). A window the reader sets is
applied by the client with the VOI LUT Function of the file (C.11.2.1.2.1 LINEAR, C.11.2.1.3.2 LINEAR_EXACT,
C.11.2.1.3.1 SIGMOID) and inverted for MONOCHROME1 / INVERSE, the same arithmetic as ``display.display_values``,
so the canvas equals ``display.render_file(path, frame, window)`` within rounding (one grey level).

Colour frames are sent as RGB bytes without a table; frames whose stored values span more than
``display.MAX_LUT_ENTRIES`` are refused (the server-rendered view shows them).
"""

from __future__ import annotations

import json
import os

import numpy as np
from pydicom.dataset import Dataset

from studyapp.dicom import display

WL_STEPS_PER_RANGE = 1000.0
"""A window/level drag of one screen pixel changes the width or center by (modality range) / this."""

MEDIA_TYPE = "application/vnd.studyapp.frame"
"""Content type of a body made by ``pack``."""

BATCH_MEDIA_TYPE = "application/vnd.studyapp.frames"
"""Content type of a body made by ``pack_batch``."""

_ALIGN = 8


def pack(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """One frame as binary: a small JSON header, then raw little-endian arrays the browser views without copying.

    Layout: uint32 little-endian length N of the header; N bytes of UTF-8 JSON, padded with spaces so that the
    arrays start at a multiple of 8 bytes (at 4 + N); then each array's bytes, each padded to a multiple of 8. The
    header gets ``arrays``: ``{name: {"dtype": numpy dtype string ("<u2", "|u1", "<f8"), "offset": bytes from
    the start of the arrays (4 + N), "length": number of values}}``.

    Args:
        header: JSON-able fields.
        arrays: name -> array (made little-endian and C-contiguous here).

    Returns:
        The body (``unpack`` reads it back).
    """
    parts, layout, offset = [], {}, 0
    for name, array in arrays.items():
        array = np.asarray(array)
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        raw = data.tobytes()
        layout[name] = {"dtype": data.dtype.str, "offset": offset, "length": int(data.size)}
        parts.append(raw + b"\0" * (-len(raw) % _ALIGN))
        offset += len(parts[-1])
    text = json.dumps({**header, "arrays": layout}, separators=(",", ":")).encode()
    text += b" " * (-(4 + len(text)) % _ALIGN)
    return len(text).to_bytes(4, "little") + text + b"".join(parts)


def unpack(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of a body made by ``pack``.

    Raises:
        ValueError: the body is truncated or its header is not JSON.
    """
    if len(body) < 4:
        raise ValueError("frame body shorter than its header length")
    size = int.from_bytes(body[:4], "little")
    header = json.loads(body[4 : 4 + size])
    arrays = {}
    for name, entry in header.pop("arrays").items():
        dtype = np.dtype(entry["dtype"])
        start = 4 + size + entry["offset"]
        if start + entry["length"] * dtype.itemsize > len(body):
            raise ValueError(f"frame body truncated in {name}")
        arrays[name] = np.frombuffer(body, dtype=dtype, count=entry["length"], offset=start)
    return header, arrays


def pack_batch(answers: list[tuple[int, bytes]]) -> bytes:
    """Several answers in one body: uint32 little-endian count, then per answer uint32 HTTP status, uint32 length
    and that many bytes (a ``pack`` body for 200, else JSON ``{"error": message}``), padded to a multiple of 8.

    Returns:
        The body (``unpack_batch`` reads it back).
    """
    parts = [len(answers).to_bytes(4, "little")]
    for status, body in answers:
        parts += [int(status).to_bytes(4, "little"), len(body).to_bytes(4, "little"), body,
                  b"\0" * (-len(body) % _ALIGN)]
    return b"".join(parts)


def unpack_batch(body: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) answers of a ``pack_batch`` body.

    Raises:
        ValueError: the body is truncated.
    """
    if len(body) < 4:
        raise ValueError("batch body shorter than its count")
    count, at, answers = int.from_bytes(body[:4], "little"), 4, []
    for _ in range(count):
        if at + 8 > len(body):
            raise ValueError("batch body truncated")
        status, size = int.from_bytes(body[at:at + 4], "little"), int.from_bytes(body[at + 4:at + 8], "little")
        if at + 8 + size > len(body):
            raise ValueError("batch body truncated")
        answers.append((status, body[at + 8:at + 8 + size]))
        at += 8 + size + (-size % _ALIGN)
    return answers


def _positive_pair(value) -> tuple[float, float] | None:
    try:
        row, column = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (row, column) if row > 0 and column > 0 else None


def pixel_spacing(ds: Dataset, frame: int = 0) -> dict:
    """The spacing the viewer's ruler uses, and which attribute it comes from (PS3.3 10.7.1.3).

    Pixel Spacing (0028,0030) (from the Pixel Measures functional group for enhanced objects) is the spacing in
    the patient; without it, Imager Pixel Spacing (0018,1164) is the spacing at the detector plane, not corrected
    for geometric magnification. Zero, missing or malformed values leave the image uncalibrated.

    Returns:
        ``{"row_mm": float, "column_mm": float, "source": str}`` with ``source`` "Pixel Spacing" or "Imager
        Pixel Spacing (at the detector)", or ``{"source": None}`` when uncalibrated.
    """
    candidates = [ds.get("PixelSpacing")]
    for item in reversed(display.functional_group_items(ds, frame)):
        measures = item.get("PixelMeasuresSequence")
        if measures:
            candidates.insert(0, measures[0].get("PixelSpacing"))
    for value in candidates:
        spacing = _positive_pair(value)
        if spacing:
            return {"row_mm": spacing[0], "column_mm": spacing[1], "source": "Pixel Spacing"}
    spacing = _positive_pair(ds.get("ImagerPixelSpacing"))
    if spacing:
        return {"row_mm": spacing[0], "column_mm": spacing[1], "source": "Imager Pixel Spacing (at the detector)"}
    return {"source": None}


def encode_file(path: str | os.PathLike, frame: int = 0) -> bytes:
    """Everything the browser viewer needs to show ``frame`` of ``path`` and window it locally, as a ``pack``
    body: the file decoded now (no cache; ``studyapp.dicom.series_cache.frame_body`` keeps the result).

    Args:
        path: DICOM file.
        frame: 0-based frame index.

    Returns:
        A ``pack`` body. Header: ``rows``, ``columns``; ``kind`` "grayscale" or "colour"; grayscale only:
        ``window`` (the file's center, width, or the estimate), ``voi_function``, ``invert``, ``presets`` (name ->
        [center, width], ``display.window_presets`` order), ``wl_per_pixel`` (modality units per pixel of
        window/level drag), ``values_offset`` (stored value = value + this); ``spacing`` (``pixel_spacing``).
        Arrays: ``values`` (grayscale: uint8 or uint16 table indices, rows x columns; colour: RGB uint8,
        row-major); grayscale only: ``modality`` (float64, modality value per index), ``stored_lut`` (uint8,
        display value per index under the file's VOI).

    Raises:
        IndexError, UndecodableImageError: as ``display.decode_frame`` / ``display.read_image``.
        ValueError: the stored values span more than ``display.MAX_LUT_ENTRIES`` (no table to send).
    """
    ds = display.read_image(path)
    return encode(display.decode_frame(ds, frame), pixel_spacing(ds, frame))


def encode(decoded: display.DecodedFrame, spacing: dict, **fields) -> bytes:
    """The ``pack`` body of a decoded frame (fields as ``encode_file``; ``fields`` added to the header).

    Raises:
        ValueError: the stored values span more than ``display.MAX_LUT_ENTRIES`` (no table to send).
    """
    rows, columns = decoded.values.shape[:2]
    header = {"rows": int(rows), "columns": int(columns), "spacing": spacing, **fields}
    if decoded.is_colour:
        return pack({**header, "kind": "colour"}, {"values": decoded.values.astype(np.uint8)})
    if decoded.lut_size is None:
        raise ValueError(f"{decoded.source}: stored values span more than {display.MAX_LUT_ENTRIES} levels")
    ctx = decoded.lut_dataset
    index = np.arange(decoded.lut_size, dtype=np.int64)
    modality = np.asarray(display.modality_values(index + decoded.values_offset, ctx), dtype=np.float64)
    presets = display.window_presets(decoded)
    sample = decoded.modality_sample
    span = float(sample.max() - sample.min()) if sample.size else 1.0
    header.update({
        "kind": "grayscale",
        "window": list(decoded.default_window),
        "voi_function": str(ctx.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR",
        "invert": display.is_inverted(ctx),
        "presets": {name: list(window) for name, window in presets.items() if name != "default"},
        "wl_per_pixel": max(span, 1.0) / WL_STEPS_PER_RANGE,
        "values_offset": int(decoded.values_offset),
    })
    values = decoded.values.astype(np.uint16 if decoded.lut_size > 256 else np.uint8)
    return pack(header, {"values": values, "modality": modality, "stored_lut": display.display_lut(decoded)})
