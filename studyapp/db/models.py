"""Reader-study models: studies, cases (imaging studies) with series and instances, users, arms, drafts,
assignments, reports with autosaved versions, answers to the post-report questions and audit events.

Anything a reader produced (reports, versions, answers) is protected from cascade deletes: deleting
a case or assignment that has a report fails at the database (``ondelete="RESTRICT"``).
Enum-like codes (roles, statuses, event kinds) are stored as stable strings and never renamed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from studyapp.clock import utcnow
from studyapp.db.base import Base

ROLE_READER = "reader"
ROLE_COORDINATOR = "coordinator"
#: Every role an account can have.
ROLES = (ROLE_READER, ROLE_COORDINATOR)

STATUS_NEW = "new"
STATUS_IN_PROGRESS = "in_progress"
STATUS_SUBMITTED = "submitted"

ARM_TEMPLATE = "template"

#: The paper's post-report questions (section 4.3): the default question set of a study
#: (``studyapp.services.questions`` defines the format; the analysis reads these two codes).
DEFAULT_QUESTIONS = (
    {"code": "confidence", "kind": "likert", "question": "How confident are you in your final report?",
     "required": True, "min": 1, "max": 5,
     "labels": ["Not at all confident", "Slightly", "Moderately", "Very", "Completely confident"]},
    {"code": "mental_demand", "kind": "likert", "question": "How mentally demanding was this case?",
     "required": True, "min": 1, "max": 5, "labels": ["Very low", "Low", "Moderate", "High", "Very high"]},
)


class User(Base):
    """A person who signs in: a reader (radiologist) or a study coordinator."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32), default=ROLE_READER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignInSession(Base):
    """A signed-in browser: the SHA-256 of its random cookie token (never the token itself), its account, when it
    was last active, and when and why it ended (signed out, idle, ...). Kept in the database so a server restart
    signs no one out (``studyapp.services.signins``)."""

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[Optional[datetime]] = mapped_column(default=None)
    end_reason: Mapped[Optional[str]] = mapped_column(String(32), default=None)

    user: Mapped[User] = relationship()


class ReaderStudy(Base):
    """One experiment: cases, readers, arms, protocol options and the seed of its random design."""

    __tablename__ = "reader_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    seed: Mapped[int] = mapped_column(Integer, default=0)
    template_text: Mapped[str] = mapped_column(Text, default="")
    #: the ordered post-report questions (``studyapp.services.questions``)
    questions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=lambda: [dict(q) for q in DEFAULT_QUESTIONS], server_default="[]")
    autosave_seconds: Mapped[float] = mapped_column(Float, default=5.0)
    idle_seconds: Mapped[float] = mapped_column(Float, default=60.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    arms: Mapped[list[Arm]] = relationship(back_populates="study", order_by="Arm.id")
    cases: Mapped[list[Case]] = relationship(back_populates="study", order_by="Case.id")
    readers: Mapped[list[StudyReader]] = relationship(back_populates="study")


class StudyReader(Base):
    """Membership of a reader in a study."""

    __tablename__ = "study_readers"
    __table_args__ = (UniqueConstraint("study_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))

    study: Mapped[ReaderStudy] = relationship(back_populates="readers")
    user: Mapped[User] = relationship()


class Arm(Base):
    """A starting condition for the report, e.g. ``template``, ``llm``, ``model`` (paper section 2.4)."""

    __tablename__ = "arms"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(256), default="")
    #: readers of this arm see its drafts' findings (boxes, masks) on the image ("model draft with findings")
    shows_findings: Mapped[bool] = mapped_column(default=False, server_default="0")

    study: Mapped[ReaderStudy] = relationship(back_populates="arms")


class Case(Base):
    """One imaging study (DICOM StudyInstanceUID) with its clinical context, inside one reader study."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("study_id", "case_key"),
        UniqueConstraint("study_id", "study_instance_uid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="CASCADE"))
    case_key: Mapped[str] = mapped_column(String(128))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    accession_number: Mapped[Optional[str]] = mapped_column(String(64))
    study_date: Mapped[Optional[str]] = mapped_column(String(8))
    study_description: Mapped[Optional[str]] = mapped_column(String(256))
    patient_age: Mapped[Optional[str]] = mapped_column(String(16))
    patient_sex: Mapped[Optional[str]] = mapped_column(String(16))
    indication: Mapped[Optional[str]] = mapped_column(Text)
    comparison: Mapped[Optional[str]] = mapped_column(Text)
    label: Mapped[Optional[str]] = mapped_column(String(16))
    reference_report: Mapped[Optional[str]] = mapped_column(Text)
    #: a practice case: every reader reads the practice cases first; their reads are stored but never counted
    is_practice: Mapped[bool] = mapped_column(default=False, server_default="0")
    pacs_url: Mapped[Optional[str]] = mapped_column(String(1024))
    """DICOMweb base URL the case was retrieved from (``studyapp.services.pacs``); reports go back there."""

    study: Mapped[ReaderStudy] = relationship(back_populates="cases")
    series: Mapped[list[Series]] = relationship(
        back_populates="case", order_by="Series.series_number", cascade="all, delete-orphan"
    )
    drafts: Mapped[list[Draft]] = relationship(back_populates="case")


class Series(Base):
    """One DICOM series (SeriesInstanceUID) of a case."""

    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("case_id", "series_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    series_number: Mapped[Optional[int]] = mapped_column(Integer)
    modality: Mapped[Optional[str]] = mapped_column(String(16))
    series_description: Mapped[Optional[str]] = mapped_column(String(256))
    body_part: Mapped[Optional[str]] = mapped_column(String(64))

    case: Mapped[Case] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(
        back_populates="series", order_by="Instance.sort_key", cascade="all, delete-orphan"
    )


class Instance(Base):
    """One DICOM SOP instance (an image, possibly multi-frame) and where its file lives."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("series_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[Optional[str]] = mapped_column(String(64))
    file_path: Mapped[str] = mapped_column(Text)
    instance_number: Mapped[Optional[int]] = mapped_column(Integer)
    sort_key: Mapped[float] = mapped_column(Float, default=0.0)
    rows: Mapped[Optional[int]] = mapped_column(Integer)
    columns: Mapped[Optional[int]] = mapped_column(Integer)
    number_of_frames: Mapped[int] = mapped_column(Integer, default=1)
    photometric_interpretation: Mapped[Optional[str]] = mapped_column(String(32))
    transfer_syntax_uid: Mapped[Optional[str]] = mapped_column(String(64))
    view_position: Mapped[Optional[str]] = mapped_column(String(16))

    series: Mapped[Series] = relationship(back_populates="instances")


class Draft(Base):
    """The immutable starting text of a case under one arm, with where it came from."""

    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("case_id", "arm_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id", ondelete="RESTRICT"))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(256))
    is_sample: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="drafts")
    arm: Mapped[Arm] = relationship()
    findings: Mapped[list[DraftFinding]] = relationship(
        back_populates="draft", order_by="DraftFinding.position", cascade="all, delete-orphan")


class DraftFinding(Base):
    """A box (``<DET>``) or mask (``<2DSEG>``/``<3DSEG>``) of a model draft with the sentence that produced it.

    ``geometry`` (JSON): a box ``{"sop_instance_uid", "frame", "xyxy"}`` (normalized xyxy on that frame); a mask
    ``{"rows", "columns", "slices": [{"sop_instance_uid", "frame", "rle"}]}`` (``studyapp.services.findings``).
    """

    __tablename__ = "draft_findings"
    __table_args__ = (UniqueConstraint("draft_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    sentence: Mapped[str] = mapped_column(Text)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)

    draft: Mapped[Draft] = relationship(back_populates="findings")


class Assignment(Base):
    """Reader x case x arm at a position in the reader's worklist. A reader reads a case at most once."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("reader_id", "case_id"),
        UniqueConstraint("study_id", "reader_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)

    reader: Mapped[User] = relationship()
    case: Mapped[Case] = relationship()
    arm: Mapped[Arm] = relationship()
    report: Mapped[Optional[Report]] = relationship(back_populates="assignment")


class Report(Base):
    """What a reader writes for one assignment: the reading session with timing and the final text."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="RESTRICT"), unique=True
    )
    draft_text: Mapped[str] = mapped_column(Text)
    current_text: Mapped[str] = mapped_column(Text)
    final_text: Mapped[Optional[str]] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default=STATUS_IN_PROGRESS)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[Optional[datetime]] = mapped_column()
    last_saved_at: Mapped[Optional[datetime]] = mapped_column()
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: text version (SQLAlchemy ``version_id_col``): every ORM UPDATE checks and increments it, so two concurrent
    #: saves cannot both win; a save of unchanged text leaves it alone; a tab's save based on an older version is
    #: refused (``reading.StaleSave``)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    #: the browser tab (one page load's random id) that stored ``current_text``, and that save's place in the tab's
    #: order (``reading.TabSave``): saves of one tab never conflict with each other
    saved_by_tab: Mapped[Optional[str]] = mapped_column(String(64))
    tab_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    assignment: Mapped[Assignment] = relationship(back_populates="report")
    versions: Mapped[list[ReportVersion]] = relationship(
        back_populates="report", order_by="ReportVersion.id"
    )
    answers: Mapped[list[QuestionAnswer]] = relationship(back_populates="report")

    __mapper_args__ = {"version_id_col": version}


class ReportVersion(Base):
    """One autosave of a report's text (append-only)."""

    __tablename__ = "report_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="RESTRICT"))
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    active_seconds: Mapped[float] = mapped_column(Float)

    report: Mapped[Report] = relationship(back_populates="versions")


class QuestionAnswer(Base):
    """One answer to a post-report question with the definition it was asked with (kind, scale, choices, unit).

    ``value`` (JSON): likert int, single choice text, multiple choice list of texts, yes/no bool, number, text."""

    __tablename__ = "question_answers"
    __table_args__ = (UniqueConstraint("report_id", "question"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="RESTRICT"))
    question: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JSON)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)

    report: Mapped[Report] = relationship(back_populates="answers")


class AuditEvent(Base):
    """Append-only log: sign-ins, imports, opened/hidden/visible/idle/submitted, exports."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    study_id: Mapped[Optional[int]] = mapped_column(ForeignKey("reader_studies.id", ondelete="SET NULL"))
    assignment_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
