"""Does a DICOM image's declared geometry agree with its pixel data, and is a frame small enough to decode?

A header can claim any Rows x Columns (PS3.3 C.7.6.3 Image Pixel Module); decoding trusts it and allocates
accordingly. These checks run at import (``studyapp.dicom.io``) and again before the viewer decodes a frame
(``studyapp.dicom.display``), so one bad file cannot make the server allocate gigabytes.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets, parse_fragments
from pydicom.filebase import DicomBytesIO
from pydicom.pixels.utils import get_expected_length, get_nr_frames

MAX_FRAME_PIXELS = 1 << 28
"""Largest Rows x Columns of one frame the platform imports or decodes: 2^28 = 268,435,456 pixels (16384 x 16384;
a 16-bit RGB frame of that size is 1.5 GiB). Chest radiographs are about 3000 x 3000, CT slices 512 x 512."""


def frame_size_problem(ds: Dataset) -> str | None:
    """Why a frame of ``ds`` is too large to decode, or ``None`` when Rows x Columns is at most ``MAX_FRAME_PIXELS``.

    Args:
        ds: a dataset with (0028,0010) Rows and (0028,0011) Columns (missing values count as 0).

    Returns:
        A sentence naming the declared size and the maximum, or ``None``.
    """
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows * columns <= MAX_FRAME_PIXELS:
        return None
    return (
        f"(0028,0010) Rows x (0028,0011) Columns is {rows} x {columns} = {rows * columns:,} pixels per frame, "
        f"above the maximum of {MAX_FRAME_PIXELS:,} (2^28)"
    )


def _encapsulated_frames(ds: Dataset) -> tuple[int, bool]:
    """(frames or fragments found, whether that count is exact) in encapsulated Pixel Data (PS3.5 A.4).

    Exact when an Extended Offset Table (7FE0,0001) or a non-empty Basic Offset Table lists the frames; otherwise
    the number of fragments, which is at least the number of frames.
    """
    if ds.get("ExtendedOffsetTable") is not None:
        return len(ds.ExtendedOffsetTable) // 8, True
    buffer = DicomBytesIO(ds.PixelData)
    offsets = parse_basic_offsets(buffer)
    if offsets:
        return len(offsets), True
    fragments, _ = parse_fragments(buffer)
    return fragments, False


def pixel_data_problem(ds: Dataset) -> str | None:
    """Why the (7FE0,0010) Pixel Data of ``ds`` does not match its header, or ``None`` when it does.

    Checks, in order: the frame size (``frame_size_problem``); native (uncompressed) data: its length equals
    Rows x Columns x Samples per Pixel x Number of Frames x Bits Allocated / 8, padded to an even length
    (PS3.5 8.1.1, pydicom ``get_expected_length``); encapsulated data: the offset table lists (0028,0008)
    Number of Frames frames, or without an offset table there are at least as many fragments as frames.

    Args:
        ds: a dataset read with its pixel data and file meta (Transfer Syntax UID).

    Returns:
        A sentence for the import report, or ``None``. Datasets without ``PixelData`` give ``None``.

    Raises:
        ValueError: encapsulated Pixel Data whose items cannot be parsed (from pydicom).
    """
    problem = frame_size_problem(ds)
    if problem is not None or "PixelData" not in ds:
        return problem
    frames = get_nr_frames(ds, warn=False)
    if not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        expected, actual = get_expected_length(ds), len(ds.PixelData)
        if actual < expected:
            return f"truncated (7FE0,0010) Pixel Data: {actual} of {expected} bytes expected from the image size"
        if actual > expected + expected % 2:
            return (
                f"(7FE0,0010) Pixel Data holds {actual} bytes but Rows x Columns x Samples per Pixel x Number of "
                f"Frames x Bits Allocated ({ds.get('Rows')} x {ds.get('Columns')} x {ds.get('SamplesPerPixel', 1)}"
                f" x {frames} x {ds.get('BitsAllocated')} bits) gives {expected}"
            )
        return None
    found, exact = _encapsulated_frames(ds)
    if found < frames or (exact and found != frames):
        unit = "frames in its offset table" if exact else "fragments"
        return (
            f"encapsulated (7FE0,0010) Pixel Data holds {found} {unit} but (0028,0008) Number of Frames is {frames}"
        )
    return None
