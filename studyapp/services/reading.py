"""A reader's work: worklist, opening a case, autosave, and submission with the answers to the study's questions.

Everything a reader's browser receives comes from the blinded views defined here (:class:`WorklistItem`,
:class:`CaseScreen`): they carry no arm code, arm label or draft source (blinding is a security property).

Active time is counted in the browser (paused while the tab is hidden or the reader idle) and reported as a
running total; the server never lets it grow faster than wall-clock time since the last save.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError

from studyapp.clock import utcnow
from studyapp.db.models import (
    ROLE_COORDINATOR,
    STATUS_IN_PROGRESS,
    STATUS_NEW,
    STATUS_SUBMITTED,
    Assignment,
    Case,
    Draft,
    QuestionAnswer,
    ReaderStudy,
    Report,
    ReportVersion,
    StudyReader,
    User,
)
from studyapp.services import audit, questions
from studyapp.services.errors import InvalidInput, NotFound, PermissionDenied

#: Seconds of clock skew and network delay tolerated when checking reported active time.
ACTIVE_TIME_SLACK_S = 2.0
#: Longest report text accepted, in characters (a chest radiograph report is a few hundred).
MAX_REPORT_CHARS = 100_000


class StaleSave(InvalidInput):
    """A save from a tab whose text is older than the stored one (the case was saved from another tab since).

    Attributes:
        version: the stored version, newer than the one the refused save was based on.
    """

    def __init__(self, case: str, version: int, saved_at: datetime | None):
        when = f" at {saved_at:%H:%M:%S} UTC" if saved_at else ""
        super().__init__(
            f"Not saved: {case} was saved from another tab or window{when} (version {version}). "
            "The text in this tab is older and is no longer saved; copy what you need from it, then reload the "
            "page to continue from the saved text.")
        self.version = version


@dataclass(frozen=True)
class WorklistItem:
    """One row of a reader's worklist (blinded: no arm, no source, no case key; ``label`` see :func:`case_label`)."""

    assignment_id: int
    position: int
    label: str
    status: str
    practice: bool = False


def case_label(position: int, case: Case) -> str:
    """The short, neutral name readers see for a case: worklist position and modality / body part, e.g.
    ``"Case 02 · CT abdomen"``. Stable for the reader; the case key (an accession number or a UID) is only for
    coordinators."""
    modalities = "/".join(sorted({s.modality for s in case.series if s.modality}))
    body_parts = "/".join(sorted({s.body_part.lower() for s in case.series if s.body_part}))
    return " · ".join(part for part in (f"Case {position:02d}", f"{modalities} {body_parts}".strip()) if part)


@dataclass(frozen=True)
class CaseScreen:
    """What the reading screen shows for one assignment (blinded: no arm, no source).

    Attributes:
        active_seconds: active time already recorded, so the timer resumes from it.
        text: the latest saved text (the draft on first open).
        questions: the study's post-report questions in order (``studyapp.services.questions``; no arm in them).
        practice: a practice case (read first, never counted).
        version: the report's save version the text belongs to; send it back with :func:`autosave`.
    """

    assignment_id: int
    case_id: int
    position: int
    label: str
    patient_age: str | None
    patient_sex: str | None
    indication: str | None
    comparison: str | None
    text: str
    status: str
    active_seconds: float
    autosave_seconds: float
    idle_seconds: float
    questions: list
    practice: bool = False
    version: int = 1


def reader_studies(session: Session, reader: User) -> list[ReaderStudy]:
    """Studies the reader is enrolled in, oldest first."""
    return list(
        session.scalars(
            select(ReaderStudy)
            .join(StudyReader, StudyReader.study_id == ReaderStudy.id)
            .where(StudyReader.user_id == reader.id)
            .order_by(ReaderStudy.id)
        )
    )


def worklist(session: Session, reader: User, study: ReaderStudy) -> list[WorklistItem]:
    """The reader's assignments in ``study`` in reading order, with status new / in_progress / submitted."""
    rows = session.execute(
        select(Assignment, Case.is_practice, Report.status)
        .join(Case, Case.id == Assignment.case_id)
        .outerjoin(Report, Report.assignment_id == Assignment.id)
        .where(Assignment.study_id == study.id, Assignment.reader_id == reader.id)
        .order_by(Assignment.position)
        .options(selectinload(Assignment.case).selectinload(Case.series))
    )
    return [
        WorklistItem(a.id, a.position, case_label(a.position, a.case), status or STATUS_NEW, practice)
        for a, practice, status in rows
    ]


#: What a save needs of an assignment, loaded with it in one query: the report, and the case with its series (for
#: :func:`case_label` in a refusal, which may come after a failed flush, when nothing more can be loaded).
_WITH_REPORT_AND_CASE = (joinedload(Assignment.report), joinedload(Assignment.case).joinedload(Case.series))


def own_assignment(session: Session, reader: User, assignment_id: int) -> Assignment:
    """The assignment ``assignment_id`` if it belongs to ``reader``, loaded with its report, case and series in one
    query (keep a reference to it: a later call in the same session then costs no query).

    Raises:
        NotFound: no such assignment.
        PermissionDenied: it belongs to another reader.
    """
    assignment = session.get(Assignment, assignment_id, options=_WITH_REPORT_AND_CASE)
    if assignment is None:
        raise NotFound(f"unknown assignment {assignment_id}")
    if assignment.reader_id != reader.id:
        raise PermissionDenied(f"assignment {assignment_id} is not assigned to {reader.username!r}")
    return assignment


def _starting_text(session: Session, assignment: Assignment) -> str:
    draft = session.scalar(
        select(Draft).where(Draft.case_id == assignment.case_id, Draft.arm_id == assignment.arm_id)
    )
    if draft is None:
        raise NotFound(
            f"{case_label(assignment.position, assignment.case)} has no draft for its assigned starting condition; "
            "ask the coordinator to import drafts"
        )
    return draft.text


def _log(session: Session, kind: str, reader: User, assignment: Assignment, **detail) -> None:
    audit.record(session, kind, user=reader, study_id=assignment.study_id, assignment_id=assignment.id, **detail)


def open_case(session: Session, reader: User, assignment_id: int) -> CaseScreen:
    """Open (or resume) an assignment; the first open creates the report from the draft and records ``opened_at``.

    Raises:
        NotFound, PermissionDenied: see :func:`own_assignment`; NotFound also when the case has no draft.
        InvalidInput: a counted case while practice cases of the study are not submitted yet (practice comes first).
    """
    assignment = own_assignment(session, reader, assignment_id)
    case, study = assignment.case, session.get(ReaderStudy, assignment.study_id)
    if not case.is_practice:
        left = [i for i in worklist(session, reader, study) if i.practice and i.status != STATUS_SUBMITTED]
        if left:
            raise InvalidInput(f"read the practice cases first: {len(left)} practice case(s) not submitted yet "
                               f"({', '.join(i.label for i in left)})")
    report = assignment.report
    if report is None:
        text = _starting_text(session, assignment)
        report = Report(assignment_id=assignment.id, draft_text=text, current_text=text, status=STATUS_IN_PROGRESS)
        session.add(report)
        session.flush()
        _log(session, "opened", reader, assignment)
    else:
        _log(session, "resumed", reader, assignment, active_seconds=report.active_seconds)
    return _case_screen(assignment, study, report.current_text if report.status != STATUS_SUBMITTED
                        else report.final_text, report.status, report.active_seconds, report.version)


def _case_screen(assignment: Assignment, study: ReaderStudy, text: str, status: str, active_seconds: float,
                 version: int) -> CaseScreen:
    case = assignment.case
    return CaseScreen(
        assignment_id=assignment.id,
        case_id=case.id,
        position=assignment.position,
        label=case_label(assignment.position, case),
        patient_age=case.patient_age,
        patient_sex=case.patient_sex,
        indication=case.indication,
        comparison=case.comparison,
        text=text,
        status=status,
        active_seconds=active_seconds,
        autosave_seconds=study.autosave_seconds,
        idle_seconds=study.idle_seconds,
        questions=study.questions,
        practice=case.is_practice,
        version=version,
    )


def preview_case(session: Session, coordinator: User, assignment_id: int) -> CaseScreen:
    """What the assignment's reader sees for it, for a coordinator's read-only preview: the same blinded
    :class:`CaseScreen` as :func:`open_case` (no arm, no source), with the text the reader would find (the saved
    text, or the starting draft before the first open). Changes nothing: no report is created, nothing is logged.

    Raises:
        PermissionDenied: ``coordinator`` is not a coordinator.
        NotFound: no such assignment, or the case has no draft for its arm yet.
    """
    if coordinator.role != ROLE_COORDINATOR:
        raise PermissionDenied(f"{coordinator.username!r} is not a coordinator; only coordinators preview readers")
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"unknown assignment {assignment_id}")
    study, report = session.get(ReaderStudy, assignment.study_id), assignment.report
    if report is None:
        return _case_screen(assignment, study, _starting_text(session, assignment), STATUS_NEW, 0.0, 0)
    text = report.current_text if report.status != STATUS_SUBMITTED else report.final_text
    return _case_screen(assignment, study, text, report.status, report.active_seconds, report.version)


def _accept_active_seconds(report: Report, reported: float, now: datetime) -> float:
    """Active time after a save: never less than stored, never more than stored + wall time since the last save,
    and never more than the wall time since the case was first opened (the slack counts once, not per save).

    Raises:
        InvalidInput: ``reported`` is not a finite non-negative number.
    """
    if isinstance(reported, bool) or not isinstance(reported, (int, float)) or not math.isfinite(reported) \
            or reported < 0:
        raise InvalidInput(f"active seconds must be a non-negative number, got {reported!r}")
    since_save = (now - (report.last_saved_at or report.opened_at)).total_seconds()
    since_open = (now - report.opened_at).total_seconds()
    ceiling = min(report.active_seconds + since_save, since_open) + ACTIVE_TIME_SLACK_S
    return max(report.active_seconds, min(float(reported), ceiling))


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise InvalidInput(f"report text must be text, got {type(text).__name__}")
    if len(text) > MAX_REPORT_CHARS:
        raise InvalidInput(f"the report is {len(text):,} characters long; the limit is {MAX_REPORT_CHARS:,}")
    if "\x00" in text:
        raise InvalidInput("the report contains a NUL character")


def _open_report(session: Session, reader: User, assignment_id: int) -> tuple[Assignment, Report]:
    assignment = own_assignment(session, reader, assignment_id)
    report = assignment.report
    if report is None:
        raise InvalidInput(f"assignment {assignment_id} has not been opened yet")
    if report.status == STATUS_SUBMITTED:
        raise InvalidInput(f"the report of {case_label(assignment.position, assignment.case)} is already submitted")
    return assignment, report


@dataclass(frozen=True)
class TabSave:
    """Which browser tab sent a save: ``page`` is a random id of one page load, ``sequence`` counts that page's save
    snapshots (each later snapshot has a larger number and the tab's newer text)."""

    page: str
    sequence: int


def autosave(session: Session, reader: User, assignment_id: int, text: str, active_seconds: float,
             base_version: int | None = None, tab: TabSave | None = None) -> Report:
    """Store the current text as a new version (only when it changed) and the active time.

    Two tabs of one reader on one case must not overwrite each other silently: a save names the
    ``base_version`` its text grew from (``CaseScreen.version``, then ``Report.version`` after each save) and one
    that changes the text is refused when another tab stored a newer text since. The version counts text changes
    only: a save of unchanged text (a periodic save of an idle tab) stores the active time without moving it, so it
    never makes another tab's text stale. Saves of one tab are told apart by ``tab``: a text this same tab stored
    is never a conflict (its saves may overlap: a periodic save and a typing save sent together), and a snapshot
    older than one the tab already stored (arriving late) changes nothing.

    Args:
        text: the editor's full text.
        active_seconds: the browser's running total of active seconds for this case.
        base_version: the version the tab's text is based on; ``None`` skips the check (command line, tests).
        tab: the sending tab and the save's place in its order; ``None`` for saves without a tab (command line).

    Returns:
        The report; ``report.version`` is the version the tab's text now is (send it with the next save).

    Raises:
        StaleSave: ``text`` differs from the stored text, ``base_version`` is older than the stored version and the
            stored text came from another tab (or a save without ``tab``).
        InvalidInput: the report is not open or already submitted, ``text`` is not text or longer than
            :data:`MAX_REPORT_CHARS`, or ``active_seconds`` is not a finite non-negative number.
        NotFound, PermissionDenied: see :func:`own_assignment`.
    """
    _check_text(text)
    assignment, report = _open_report(session, reader, assignment_id)
    # read before any change: after a failed flush the session is rolled back and cannot load them
    label, version = case_label(assignment.position, assignment.case), report.version
    same_tab = tab is not None and report.saved_by_tab == tab.page
    if same_tab and tab.sequence <= report.tab_sequence:
        return report  # a late snapshot of this tab: it already stored a newer text
    now = utcnow()
    seconds = _accept_active_seconds(report, active_seconds, now)
    if text == report.current_text:
        # not a text version: an UPDATE by criteria leaves the version counter alone (the object is synchronised)
        session.execute(update(Report).where(Report.id == report.id)
                        .values(active_seconds=seconds, last_saved_at=now))
        return report
    if base_version is not None and base_version != version and not same_tab:
        raise StaleSave(label, version, report.last_saved_at)
    report.active_seconds, report.last_saved_at, report.current_text = seconds, now, text
    report.saved_by_tab, report.tab_sequence = (tab.page, tab.sequence) if tab else (None, 0)
    # added directly, not through report.versions, which would load every earlier version on each save
    session.add(ReportVersion(report_id=report.id, saved_at=now, text=text, active_seconds=seconds))
    try:
        session.flush()  # UPDATE ... WHERE version = the version read above: a concurrent save makes it match 0 rows
    except StaleDataError:
        raise StaleSave(label, version + 1, None) from None
    return report


def submit(
    session: Session,
    reader: User,
    assignment_id: int,
    text: str,
    active_seconds: float,
    answers: dict,
    base_version: int | None = None,
    tab: TabSave | None = None,
) -> Report:
    """Submit the final report with the answers to the study's questions (by default the paper's confidence and
    mental demand Likert items, section 4.3; checked by :func:`studyapp.services.questions.validate_answers`).

    Validation runs before anything is written, so a refused submission leaves the autosaved text as it was.

    Raises:
        StaleSave: see :func:`autosave` (``base_version`` and ``tab`` as there).
        InvalidInput: empty report, a required question unanswered, an answer that does not fit its question, or
            already submitted.
        NotFound, PermissionDenied: see :func:`own_assignment`.
    """
    _check_text(text)
    if not text.strip():
        raise InvalidInput("the report is empty")
    study = session.get(ReaderStudy, own_assignment(session, reader, assignment_id).study_id)
    answers = questions.validate_answers(study.questions, answers)
    report = autosave(session, reader, assignment_id, text, active_seconds, base_version, tab)
    report.final_text = text
    report.submitted_at = utcnow()
    report.status = STATUS_SUBMITTED
    definitions = {q["code"]: q for q in study.questions}
    for code, value in answers.items():
        session.add(QuestionAnswer(report_id=report.id, question=code, value=value, definition=definitions[code]))
    _log(session, "submitted", reader, report.assignment, active_seconds=report.active_seconds)
    session.flush()
    return report


def next_open_assignment(session: Session, reader: User, study: ReaderStudy) -> int | None:
    """The first assignment in reading order that is not submitted, or ``None`` when the worklist is done."""
    for item in worklist(session, reader, study):
        if item.status != STATUS_SUBMITTED:
            return item.assignment_id
    return None
