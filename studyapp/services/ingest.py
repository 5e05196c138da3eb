"""Import a folder of DICOM files into a reader study as cases (imaging studies), series and instances.

Idempotent: an instance already in the study (same Study/Series/SOP Instance UID) is skipped, so importing the same
folder twice creates no duplicates. The caller owns the transaction: rows are added and flushed, never committed.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from studyapp.db.models import Case, Instance, ReaderStudy, Series
from studyapp.dicom.io import InstanceHeader, group_by_series, scan_folder
from studyapp.dicom import reformat, series_cache
from studyapp.services import audit, images

IMPORTED = "imported"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file: ``status`` is imported, skipped or failed; ``reason`` explains (may be empty)."""

    path: str
    status: str
    reason: str = ""


@dataclass
class ImportReport:
    """Per-file outcomes of one folder import and the rows it created.

    Attributes:
        folder: the folder imported.
        files: one ``FileOutcome`` per file found, in path order.
        cases_created, series_created: new Case and Series rows.
        case_ids: ids of every case the imported or already-present instances belong to, in first-seen order.
        followed_links_outside: symbolic links out of ``folder`` were followed (``follow_links_outside``).
    """

    folder: str
    files: list[FileOutcome] = field(default_factory=list)
    cases_created: int = 0
    series_created: int = 0
    case_ids: list[int] = field(default_factory=list)
    followed_links_outside: bool = False

    def with_status(self, status: str) -> list[FileOutcome]:
        """The outcomes with ``status`` (imported, skipped, failed)."""
        return [outcome for outcome in self.files if outcome.status == status]

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status, with all three statuses present."""
        counted = Counter(outcome.status for outcome in self.files)
        return {status: counted.get(status, 0) for status in (IMPORTED, SKIPPED, FAILED)}

    def summary(self) -> str:
        """Multi-line text for the coordinator: counts, then each skipped or failed file with its reason."""
        counts = self.counts
        lines = [
            f"{self.folder}: {counts[IMPORTED]} imported, {counts[SKIPPED]} skipped, {counts[FAILED]} failed; "
            f"{self.cases_created} new case(s), {self.series_created} new series"
        ]
        if self.followed_links_outside:
            lines.append("  symbolic links leading outside the folder were followed (--follow-links-outside)")
        lines += [f"  {o.status}: {o.path}: {o.reason}" for o in self.files if o.status != IMPORTED]
        return "\n".join(lines)


def _case_key(session: Session, study: ReaderStudy, header: InstanceHeader) -> str:
    """AccessionNumber if no other case of the study uses it, else the StudyInstanceUID."""
    key = header.accession_number
    if key and session.scalar(select(Case.id).where(Case.study_id == study.id, Case.case_key == key)) is None:
        return key
    return header.study_instance_uid


def _get_case(session: Session, study: ReaderStudy, header: InstanceHeader) -> tuple[Case, bool]:
    case = session.scalar(
        select(Case).where(Case.study_id == study.id, Case.study_instance_uid == header.study_instance_uid)
    )
    if case is not None:
        return case, False
    case = Case(
        study_id=study.id,
        case_key=_case_key(session, study, header),
        study_instance_uid=header.study_instance_uid,
        accession_number=header.accession_number,
        study_date=header.study_date,
        study_description=header.study_description,
        patient_age=header.patient_age,
        patient_sex=header.patient_sex,
    )
    session.add(case)
    session.flush()
    return case, True


def _get_series(session: Session, case: Case, header: InstanceHeader) -> tuple[Series, bool]:
    series = session.scalar(
        select(Series).where(Series.case_id == case.id, Series.series_instance_uid == header.series_instance_uid)
    )
    if series is not None:
        return series, False
    series = Series(
        case_id=case.id,
        series_instance_uid=header.series_instance_uid,
        series_number=header.series_number,
        modality=header.modality,
        series_description=header.series_description,
        body_part=header.body_part_examined,
    )
    session.add(series)
    session.flush()
    return series, True


def _instance_row(series: Series, header: InstanceHeader) -> Instance:
    return Instance(
        series_id=series.id,
        sop_instance_uid=header.sop_instance_uid,
        sop_class_uid=header.sop_class_uid,
        file_path=str(header.path),
        instance_number=header.instance_number,
        sort_key=header.sort_key,
        rows=header.rows,
        columns=header.columns,
        number_of_frames=header.number_of_frames,
        photometric_interpretation=header.photometric_interpretation,
        transfer_syntax_uid=header.transfer_syntax_uid,
        view_position=header.view_position,
    )


def _body_bytes(instance: Instance) -> int:
    """About the bytes of one decoded frame of ``instance`` as the viewer keeps it (16-bit values)."""
    return max(1, (instance.rows or 512) * (instance.columns or 512) * 2)


def _read_geometry(series: list[tuple[tuple[str, int], ...]]) -> None:
    """Read the reformat geometry of imported CT series now (kept by ``reformat.geometry``): the viewer's case
    screen needs it, and it takes one header read per slice."""
    for slices in series:
        try:
            reformat.geometry(slices)
        except ValueError:  # kept as the refusal the viewer shows
            pass


def import_folder(session: Session, study: ReaderStudy, folder: str | os.PathLike,
                  follow_links_outside: bool = False, decode: bool = False) -> ImportReport:
    """Import every DICOM image under ``folder`` (recursively) into ``study``.

    One Case per StudyInstanceUID (``case_key`` = AccessionNumber, or the StudyInstanceUID when the accession is
    empty or already used), one Series per SeriesInstanceUID, one Instance per SOP Instance UID with its file path,
    slice sort key and image attributes (see ``studyapp.dicom.io.InstanceHeader``). Existing rows are reused and
    not modified; instances already present are skipped.

    Args:
        session: an open session; the caller commits or rolls back.
        study: the reader study receiving the cases (must be persisted, i.e. have an id).
        folder: folder to scan.
        follow_links_outside: follow symbolic links whose target lies outside ``folder`` (by default they are
            skipped, each with a reason naming the link and its target).
        decode: decode the series that got new instances in the background into the web app's frame store
            (``series_cache.decode_in_background``, from the middle slice outwards), so that a reader opening
            them later gets copies, not decodes, and read the reformat geometry of CT series (the app's import
            screens; a no-op without a store).

    Returns:
        ImportReport: imported files (with notes such as derived UIDs as reason), skipped files (not DICOM, no
        pixel data, already imported, duplicate SOP Instance UID in the folder, a symbolic link out of ``folder``,
        a symbolic link to a file listed under another name)
        and failed files (truncated or unreadable DICOM), each with its reason, and the counts.

    Raises:
        NotADirectoryError: ``folder`` is not a directory.
        ValueError: ``study`` has no id yet.
    """
    if study.id is None:
        raise ValueError(f"reader study {study.name!r} must be saved (flushed) before importing DICOM into it")
    scan = scan_folder(folder, follow_links_outside=follow_links_outside)
    report = ImportReport(folder=str(folder), followed_links_outside=follow_links_outside)
    outcomes = {str(exc.path): FileOutcome(str(exc.path), SKIPPED, exc.reason) for exc in scan.skipped}
    outcomes.update({str(exc.path): FileOutcome(str(exc.path), FAILED, exc.reason) for exc in scan.failed})

    imported_series: dict[Series, None] = {}
    for series_map in group_by_series(scan.instances).values():
        case, created = _get_case(session, study, next(iter(series_map.values()))[0])
        report.cases_created += created
        report.case_ids.append(case.id)
        for members in series_map.values():
            series, created = _get_series(session, case, members[0])
            report.series_created += created
            known = {
                uid: path
                for uid, path in session.execute(
                    select(Instance.sop_instance_uid, Instance.file_path).where(Instance.series_id == series.id)
                )
            }
            for header in members:
                path = str(header.path)
                previous = known.get(header.sop_instance_uid)
                if previous is not None:
                    reason = "already imported" if previous == path else f"same SOP Instance UID as {previous}"
                    outcomes[path] = FileOutcome(path, SKIPPED, reason)
                    continue
                session.add(_instance_row(series, header))
                imported_series[series] = None
                known[header.sop_instance_uid] = path
                outcomes[path] = FileOutcome(path, IMPORTED, "; ".join(header.notes))
    session.flush()
    ct_series = []
    for series in imported_series if decode else ():
        session.expire(series, ["instances"])
        slices = images.series_slices(series)
        if slices:
            series_cache.decode_in_background(slices, _body_bytes(series.instances[0]))
            if series.modality == "CT":
                ct_series.append(tuple(slices))
    if ct_series:
        threading.Thread(target=_read_geometry, args=(ct_series,), name="import-geometry", daemon=True).start()
    report.files = [outcomes[path] for path in sorted(outcomes)]
    audit.record(session, "dicom_imported", study_id=study.id, folder=str(folder), **report.counts,
                 cases_created=report.cases_created, followed_links_outside=follow_links_outside)
    return report
