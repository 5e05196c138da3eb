"""The images of a case as the viewer navigates them, with who may see them.

A case's images are grouped into stacks: one stack per DICOM series, whose slices are the series' instances
in slice order, each frame of a multi-frame instance being one slice.
"""

from dataclasses import dataclass, field

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from studyapp.db.comparisons import ComparisonAssignment, ComparisonPair
from studyapp.db.models import ROLE_COORDINATOR, STATUS_SUBMITTED, Assignment, Case, Report, Series, User
from studyapp.services.errors import NotFound, PermissionDenied


@dataclass(frozen=True)
class ImageStack:
    """One series as a navigable stack.

    Attributes:
        label: what the reader sees, e.g. "PA · CR · series 1".
        modality: DICOM Modality (0008,0060).
        slices: (file path, 0-based frame index) per slice, in display order.
        images: (SOP Instance UID, 0-based frame index) per slice, in the same order.
    """

    label: str
    modality: str | None
    slices: list[tuple[str, int]]
    images: list[tuple[str, int]] = field(default_factory=list)


def may_view_case(session: Session, user: User, case_id: int) -> bool:
    """Coordinators see every case; a reader sees cases of their own reading or comparison assignments."""
    if user.role == ROLE_COORDINATOR:
        return True
    reading = exists().where(Assignment.reader_id == user.id, Assignment.case_id == case_id)
    comparing = (
        exists()
        .where(ComparisonAssignment.reader_id == user.id)
        .where(ComparisonAssignment.pair_id == ComparisonPair.id, ComparisonPair.case_id == case_id)
    )
    return bool(session.scalar(select(reading | comparing)))


def series_slices(series: Series) -> list[tuple[str, int]]:
    """(file path, 0-based frame index) per slice of ``series``: its instances in slice order, each frame of a
    multi-frame instance one slice."""
    return [(i.file_path, f) for i in series.instances for f in range(i.number_of_frames or 1)]


def case_stacks(session: Session, user: User, case_id: int) -> list[ImageStack]:
    """The image stacks of a case the user may view.

    Raises:
        NotFound: no such case.
        PermissionDenied: the user has no assignment for this case.
    """
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"unknown case {case_id}")
    if not may_view_case(session, user, case_id):
        raise PermissionDenied(f"{user.username!r} has no assignment for this case")
    stacks = []
    for series in case.series:
        slices = series_slices(series)
        if not slices:
            continue
        views = sorted({i.view_position for i in series.instances if i.view_position})
        number = f"series {series.series_number}" if series.series_number is not None else ""
        parts = [" / ".join(views) or series.series_description or "image", series.modality or "", number]
        uids = [(i.sop_instance_uid, f) for i in series.instances for f in range(i.number_of_frames or 1)]
        stacks.append(ImageStack(" · ".join(p for p in parts if p), series.modality, slices, uids))
    return stacks


def next_case_id(session: Session, user: User, case_id: int) -> int | None:
    """The case after ``case_id`` in the user's reading worklist (by position) whose report is not submitted,
    for warming its images ahead; ``None`` at the end or without a reading assignment for ``case_id``."""
    current = session.scalar(select(Assignment).where(Assignment.reader_id == user.id, Assignment.case_id == case_id))
    if current is None:
        return None
    submitted = exists().where(Report.assignment_id == Assignment.id, Report.status == STATUS_SUBMITTED)
    return session.scalar(
        select(Assignment.case_id)
        .where(Assignment.reader_id == user.id, Assignment.study_id == current.study_id,
               Assignment.position > current.position, ~submitted)
        .order_by(Assignment.position)
        .limit(1)
    )
