"""Find DICOM files in a folder, read what a radiologist needs from their headers, and group them by
Study / Series / SOP Instance UID (DICOM PS3.3 C.7.2.1 General Study, C.7.3.1 General Series, C.12.1 SOP Common).

Files that are not DICOM, or are DICOM without pixel data, are *skipped*; DICOM files that cannot be read
(truncated, corrupt, no SOP Instance UID) *fail*; both carry the reason.
"""

from __future__ import annotations

import errno
import os
import warnings
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import data_element_generator, read_file_meta_info
from pydicom.pixels.utils import get_nr_frames
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DA

from studyapp.dicom.geometry import pixel_data_problem

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_STUDY_IDENTITY = (
    "PatientID", "PatientName", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
    "FrameOfReferenceUID",
)  # fmt: skip
_SERIES_IDENTITY = ("Modality", "SeriesNumber", "SeriesDate", "SeriesTime", "SeriesDescription", "FrameOfReferenceUID")


class DicomFileError(Exception):
    """A file that cannot be imported; ``reason`` says why in words a coordinator understands."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class NotAnImageError(DicomFileError):
    """Not DICOM, or DICOM without pixel data (e.g. DICOMDIR, structured report): skipped."""


class UnreadableDicomError(DicomFileError):
    """DICOM that is truncated, corrupt or lacks its Study/Series/SOP Instance UIDs: failed."""


@dataclass(frozen=True)
class InstanceHeader:
    """What the platform keeps from one DICOM image file.

    Attributes:
        path: absolute file path.
        study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid: identifying UIDs.
        patient_age: age at the study as ``<n>Y``/``<n>M``/``<n>W``/``<n>D`` from (0010,1010) Patient's Age, else
            computed from (0010,0030) Patient's Birth Date and (0008,0020) Study Date; ``None`` if unknown.
        patient_sex: (0010,0040) Patient's Sex (M, F, O).
        study_date: (0008,0020) Study Date, ``YYYYMMDD``.
        accession_number, study_description: (0008,0050), (0008,1030).
        modality, series_number, series_description, body_part_examined: (0008,0060), (0020,0011),
            (0008,103E), (0018,0015).
        view_position: (0018,5101) View Position (PA, AP, LL, ...).
        instance_number: (0020,0013) Instance Number.
        notes: what was unusual but tolerated, e.g. an empty UID replaced by a derived one.
        sort_key: slice position along the slice normal in mm (Image Position (Patient) projected onto the cross
            product of the Image Orientation (Patient) vectors, PS3.3 C.7.6.2.1.1); else the Instance Number; else 0.
        rows, columns, number_of_frames: image size and frame count.
        photometric_interpretation, transfer_syntax_uid: (0028,0004) and (0002,0010).
    """

    path: Path
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str | None = None
    patient_age: str | None = None
    patient_sex: str | None = None
    study_date: str | None = None
    accession_number: str | None = None
    study_description: str | None = None
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    body_part_examined: str | None = None
    view_position: str | None = None
    instance_number: int | None = None
    sort_key: float = 0.0
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int = 1
    photometric_interpretation: str | None = None
    transfer_syntax_uid: str | None = None
    notes: tuple[str, ...] = ()


@dataclass
class ScanResult:
    """Outcome of reading every file under a folder: readable images, and the files left out with reasons."""

    instances: list[InstanceHeader] = field(default_factory=list)
    skipped: list[DicomFileError] = field(default_factory=list)
    failed: list[DicomFileError] = field(default_factory=list)


def _link_problem(path: Path) -> str | None:
    """Why the symbolic link ``path`` cannot be followed (a loop, a missing target), or ``None``."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"symbolic link loop: {path} -> {os.readlink(path)} never reaches a file"
        return f"broken symbolic link: {path} -> {os.readlink(path)} ({exc.strerror})"
    return None


def find_files(folder: str | os.PathLike,
               follow_links_outside: bool = False) -> tuple[list[Path], list[NotAnImageError]]:
    """All regular files under ``folder``, recursively and following symbolic links, in sorted path order.

    Symbolic links that cannot be followed are left out and reported: links in a loop (a link to itself, or a
    folder link to a folder that contains it), broken links, folders that cannot be listed, and (unless
    ``follow_links_outside``) links whose target lies outside ``folder`` (a link to ``/etc`` would otherwise read
    files the coordinator never meant to import). Links are followed after every name without one: a file is listed
    under its own name, and a link to a file already found is left out and reported as its second name; a folder
    reached a second time through another link is walked once.

    Returns:
        (files, skipped): the files, and one ``NotAnImageError`` per left-out path with the reason.

    Raises:
        NotADirectoryError: ``folder`` is not a directory.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"DICOM import folder not found or not a folder: {root}")
    files: dict[Path, Path] = {}  # real path -> path as found
    skipped: list[NotAnImageError] = []
    root_real = root.resolve()
    seen_folders = {root_real: root}
    pending = [(root, (root_real,))]  # folder, real paths of it and its ancestors
    links: list[tuple[Path, tuple[Path, ...]]] = []  # followed once every name without a link is found

    def visit(entry: Path, ancestors: tuple[Path, ...]) -> None:
        problem = _link_problem(entry) if entry.is_symlink() else None
        if problem is not None:
            skipped.append(NotAnImageError(entry, problem))
            return
        real = entry.resolve()
        if not follow_links_outside and not real.is_relative_to(root_real):
            skipped.append(NotAnImageError(
                entry, f"symbolic link leads outside the import folder {root_real}: {entry} -> {real}; not "
                       "followed (--follow-links-outside follows it)"))
        elif entry.is_dir():
            if real in ancestors:
                skipped.append(NotAnImageError(
                    entry, f"symbolic link loop: {entry} -> {real}, a folder that contains the link"))
            elif real not in seen_folders:
                seen_folders[real] = entry
                pending.append((entry, ancestors + (real,)))
        elif entry.is_file():
            first = files.setdefault(real, entry)
            if first != entry:
                skipped.append(NotAnImageError(entry, f"same file as {first}, read once under that name"))

    while pending or links:
        if not pending:
            visit(*links.pop(0))
            continue
        directory, ancestors = pending.pop()
        try:
            entries = sorted(directory.iterdir())
        except OSError as exc:
            skipped.append(NotAnImageError(directory, f"folder cannot be listed: {exc.strerror}"))
            continue
        for entry in entries:
            if entry.is_symlink():
                links.append((entry, ancestors))
            else:
                visit(entry, ancestors)
    return sorted(files.values()), skipped


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _date(value) -> date | None:
    try:
        parsed = DA(value) if value else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, date) else None


def patient_age(ds: Dataset) -> str | None:
    """Age at the study: (0010,1010) Patient's Age (AS, e.g. ``062Y`` -> ``62Y``; a bare number is read as years),
    else years (months, days for infants) between (0010,0030) Patient's Birth Date and (0008,0020) Study Date."""
    age = _text(ds, "PatientAge")
    if age:
        digits, unit = (age[:-1], age[-1].upper()) if age[-1].isalpha() else (age, "Y")
        if digits.isdigit() and unit in "DWMY":
            return f"{int(digits)}{unit}"
    birth, study = _date(ds.get("PatientBirthDate")), _date(ds.get("StudyDate"))
    if birth is None or study is None or study < birth:
        return None
    months = (study.year - birth.year) * 12 + study.month - birth.month - (study.day < birth.day)
    if months >= 12:
        return f"{months // 12}Y"
    return f"{months}M" if months >= 1 else f"{(study - birth).days}D"


def slice_sort_key(ds: Dataset) -> float:
    """Position of the slice along its normal in mm (PS3.3 C.7.6.2.1.1), else Instance Number, else 0.

    The normal is the cross product of the row and column direction cosines in (0020,0037) Image Orientation
    (Patient); the position is (0020,0032) Image Position (Patient) projected onto it.
    """
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if position is not None and orientation is not None and len(position) == 3 and len(orientation) == 6:
        cosines = np.asarray(orientation, dtype=float)
        normal = np.cross(cosines[:3], cosines[3:])
        return float(np.dot(normal, np.asarray(position, dtype=float)))
    number = _int(ds, "InstanceNumber")
    return float(number) if number is not None else 0.0


def _derived_uid(ds: Dataset, parent: str, keywords: tuple[str, ...]) -> str:
    """A deterministic UID from ``parent`` and the values of ``keywords`` (pydicom ``generate_uid`` entropy)."""
    return generate_uid(entropy_srcs=[parent] + [f"{keyword}={ds.get(keyword, '')}" for keyword in keywords])


def identifying_uids(path: Path, ds: Dataset) -> tuple[str, str, str, tuple[str, ...]]:
    """(StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, notes) of ``ds``.

    De-identified files sometimes carry empty UIDs. Then the SOP Instance UID falls back to (0002,0003) Media
    Storage SOP Instance UID (PS3.10 7.1: the same value), and the Study/Series Instance UIDs are derived
    deterministically (``pydicom.uid.generate_uid`` with the patient, study date/time, accession, series
    number/description/time and Frame of Reference UID as entropy), so re-importing gives the same UIDs; each
    substitution is described in ``notes``.

    Raises:
        UnreadableDicomError: neither a SOP Instance UID nor a Media Storage SOP Instance UID.
    """
    notes = []
    sop = _text(ds, "SOPInstanceUID")
    if not sop:
        meta = getattr(ds, "file_meta", None)
        sop = _text(meta, "MediaStorageSOPInstanceUID") if meta is not None else None
        if not sop:
            raise UnreadableDicomError(path, "missing (0008,0018) SOP Instance UID")
        notes.append("empty (0008,0018) SOP Instance UID: used (0002,0003) Media Storage SOP Instance UID")
    study = _text(ds, "StudyInstanceUID")
    if not study:
        study = _derived_uid(ds, "study", _STUDY_IDENTITY)
        notes.append(
            "empty (0020,000D) Study Instance UID: derived from patient, study date/time and frame of reference"
        )
    series = _text(ds, "SeriesInstanceUID")
    if not series:
        series = _derived_uid(ds, study, _SERIES_IDENTITY)
        notes.append("empty (0020,000E) Series Instance UID: derived from the study and series attributes")
    return study, series, sop, tuple(notes)


def _check_pixel_data(path: Path, ds: Dataset, read_warnings: list[str]) -> None:
    if read_warnings and any("End of file" in message for message in read_warnings):
        raise UnreadableDicomError(path, f"truncated DICOM file: {read_warnings[0]}")
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        sop_class = ds.get("SOPClassUID")
        name = sop_class.name if sop_class else "unknown SOP Class"
        raise NotAnImageError(path, f"DICOM without (7FE0,0010) Pixel Data ({name})")
    try:
        problem = pixel_data_problem(ds)
    except ValueError as exc:
        raise UnreadableDicomError(path, f"encapsulated (7FE0,0010) Pixel Data cannot be parsed: {exc}") from exc
    if problem is not None:
        raise UnreadableDicomError(path, problem)


#: Largest data set a Deflated Explicit VR Little Endian file (PS3.5 A.5) may inflate to: pydicom inflates the whole
#: data set in memory before parsing it, so a larger one (a deflate bomb) is refused before pydicom reads it. The
#: bound is that of one frame at ``geometry.MAX_FRAME_PIXELS`` with 16-bit samples.
MAX_INFLATED_BYTES = 512 * 2**20
#: Explicit VRs with a 4-byte value length (PS3.5 7.1.2, table 7.1-1).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _data_set_offset(f) -> int | None:
    """Byte offset of the data set after the File Meta Information of an open Part 10 file (PS3.10 7.1: 128-byte
    preamble, ``DICM``, group 0002 in Explicit VR Little Endian), or ``None`` when the file is not laid out so."""
    f.seek(128)
    if f.read(4) != b"DICM":
        return None
    while True:
        start = f.tell()
        head = f.read(8)
        if len(head) < 8:
            return None
        group, vr = int.from_bytes(head[:2], "little"), head[4:6]
        if group != 0x0002:
            return start
        if vr in _LONG_VRS:
            extra = f.read(4)
            if len(extra) < 4:
                return None
            f.seek(int.from_bytes(extra, "little"), os.SEEK_CUR)
        else:
            f.seek(int.from_bytes(head[6:8], "little"), os.SEEK_CUR)


def _inflated_size_problem(path: Path) -> str | None:
    """``deflate bomb: ...`` when the deflated data set of ``path`` inflates beyond :data:`MAX_INFLATED_BYTES`
    (measured in bounded chunks, never held whole), else ``None`` (a corrupt stream is left to pydicom)."""
    with open(path, "rb") as f:
        offset = _data_set_offset(f)
        if offset is None:
            return None
        f.seek(offset)
        inflater, inflated = zlib.decompressobj(-zlib.MAX_WBITS), 0
        while chunk := f.read(2**20):
            while chunk:
                try:
                    inflated += len(inflater.decompress(chunk, 16 * 2**20))
                except zlib.error:
                    return None
                chunk = inflater.unconsumed_tail
                if inflated > MAX_INFLATED_BYTES:
                    compressed = path.stat().st_size - offset
                    return (f"deflate bomb: the Deflated Explicit VR Little Endian data set of {compressed:,} bytes "
                            f"inflates to more than {MAX_INFLATED_BYTES:,} bytes (over {inflated // compressed:,} "
                            "times its size); refused before reading it")
    return None


def _length_problem(path: Path, transfer_syntax: UID) -> str | None:
    """``length field beyond the file size: ...`` when a top-level data element of ``path`` other than the pixel
    data declares more bytes than the file holds after it (e.g. 2 GB in a 2 kB file: pydicom would read to the end
    of the file into that element and then find no Pixel Data), else ``None``. Values are skipped, not read
    (``defer_size``)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = _data_set_offset(f)
        if offset is None:
            return None
        f.seek(offset)
        elements = data_element_generator(  # stops before an undefined-length value (encapsulated Pixel Data)
            f, transfer_syntax.is_implicit_VR, transfer_syntax.is_little_endian, defer_size=0,
            stop_when=lambda tag, vr, length: length == 0xFFFFFFFF and vr != "SQ")
        try:
            for raw in elements:
                if raw.tag in _PIXEL_TAGS:  # a cut-off Pixel Data is reported as truncated by the full read
                    continue
                if raw.length != 0xFFFFFFFF and raw.value_tell + raw.length > size:
                    return (f"length field beyond the file size: ({raw.tag.group:04X},{raw.tag.element:04X}) "
                            f"declares {raw.length:,} bytes at byte {raw.value_tell:,}, but the file has {size:,} "
                            "bytes")
        except Exception:  # a corrupt data set: the full read reports it
            return None
    return None


def size_problem(path: Path) -> str | None:
    """Why ``path`` must not be handed to pydicom's full read, naming the attack: a deflate bomb
    (:func:`_inflated_size_problem`) or a length field beyond the file size (:func:`_length_problem`); ``None``
    for any other file (including non-DICOM ones, which the full read reports)."""
    try:
        meta = read_file_meta_info(path)
    except Exception:  # no DICM prefix or a corrupt meta group: the full read reports it
        return None
    transfer_syntax = meta.get("TransferSyntaxUID")
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        return _inflated_size_problem(path)
    if transfer_syntax is None or not transfer_syntax.is_transfer_syntax:
        return None
    return _length_problem(path, transfer_syntax)


def read_instance(path: str | os.PathLike, verify_pixel_data: bool = True) -> InstanceHeader:
    """Read the header of one DICOM file.

    Args:
        path: the file.
        verify_pixel_data: read the whole file (pixel data is read, not decoded) to reject truncated files and
            files without pixel data; ``False`` reads only the header (``stop_before_pixels``).

    Returns:
        The ``InstanceHeader``.

    Raises:
        NotAnImageError: not a DICOM file (no ``DICM`` prefix) or DICOM without pixel data.
        UnreadableDicomError: truncated or corrupt file, a deflate bomb or a length field beyond the file size
            (:func:`size_problem`, checked before the full read), no SOP Instance UID (see ``identifying_uids``), Rows,
            Columns or Bits Allocated below 1, a file name that is not valid UTF-8, or (``verify_pixel_data``)
            a header whose geometry does not match the pixel data or declares more than
            ``studyapp.dicom.geometry.MAX_FRAME_PIXELS`` pixels per frame (``geometry.pixel_data_problem``).
    """
    path = Path(path).resolve()
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnreadableDicomError(path, "the file name is not valid UTF-8; rename the file") from exc
    problem = size_problem(path)
    if problem is not None:
        raise UnreadableDicomError(path, problem)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not verify_pixel_data)
        except InvalidDicomError as exc:
            raise NotAnImageError(path, f"not a DICOM file ({exc})") from exc
        except Exception as exc:  # pydicom raises many types on corrupt input (EOFError, ValueError, KeyError...)
            raise UnreadableDicomError(path, f"cannot be read as DICOM: {type(exc).__name__}: {exc}") from exc
    study_uid, series_uid, sop_uid, notes = identifying_uids(path, ds)
    for keyword in ("Rows", "Columns", "BitsAllocated"):  # Image Pixel Module, PS3.3 C.7.6.3
        value = _int(ds, keyword)
        if keyword in ds and (value is None or value < 1):
            raise UnreadableDicomError(path, f"invalid image: ({keyword}) is {ds.get(keyword)!r}, must be at least 1")
    if verify_pixel_data:
        _check_pixel_data(path, ds, [str(w.message) for w in caught])
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return InstanceHeader(
        path=path,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        sop_class_uid=_text(ds, "SOPClassUID") or (meta is not None and _text(meta, "MediaStorageSOPClassUID")) or None,
        patient_age=patient_age(ds),
        patient_sex=_text(ds, "PatientSex"),
        study_date=_text(ds, "StudyDate"),
        accession_number=_text(ds, "AccessionNumber"),
        study_description=_text(ds, "StudyDescription"),
        modality=_text(ds, "Modality"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        body_part_examined=_text(ds, "BodyPartExamined"),
        view_position=_text(ds, "ViewPosition"),
        instance_number=_int(ds, "InstanceNumber"),
        sort_key=slice_sort_key(ds),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        number_of_frames=get_nr_frames(ds, warn=False),
        photometric_interpretation=_text(ds, "PhotometricInterpretation"),
        transfer_syntax_uid=str(transfer_syntax) if transfer_syntax else None,
        notes=notes,
    )


def scan_folder(folder: str | os.PathLike, verify_pixel_data: bool = True,
                follow_links_outside: bool = False) -> ScanResult:
    """Read every file under ``folder`` (recursively) with ``read_instance``; symbolic links out of ``folder`` are
    followed only with ``follow_links_outside`` (see ``find_files``).

    Returns:
        A ``ScanResult``: images in path order; skipped (not DICOM / no pixel data, symbolic link loops, broken
        links and links out of ``folder``, see ``find_files``) and failed (unreadable, header not matching the pixel data) files with their
        reasons.

    Raises:
        NotADirectoryError: ``folder`` is not a directory.
    """
    paths, unfollowed = find_files(folder, follow_links_outside)
    result = ScanResult(skipped=list(unfollowed))
    for path in paths:
        try:
            result.instances.append(read_instance(path, verify_pixel_data))
        except NotAnImageError as exc:
            result.skipped.append(exc)
        except UnreadableDicomError as exc:
            result.failed.append(exc)
    return result


def group_by_series(instances: list[InstanceHeader]) -> dict[str, dict[str, list[InstanceHeader]]]:
    """Group instances as ``{StudyInstanceUID: {SeriesInstanceUID: [instances sorted by sort_key, Instance
    Number]}}``, studies and series in the order first seen."""
    studies: dict[str, dict[str, list[InstanceHeader]]] = defaultdict(lambda: defaultdict(list))
    for header in instances:
        studies[header.study_instance_uid][header.series_instance_uid].append(header)
    for series in studies.values():
        for members in series.values():
            members.sort(key=lambda h: (h.sort_key, h.instance_number or 0))
    return {study: dict(series) for study, series in studies.items()}
