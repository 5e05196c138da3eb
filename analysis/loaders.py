"""Study database -> tidy pandas frames; every other analysis module works on these frames only.

``readings``: one row per assignment (reader x case x arm) of the study, submitted or not.
``likert``: one row per Likert answer of a submitted report (any Likert question of the study).
``choices``: one row per chosen option of a single choice, multiple choice or yes/no answer of a submitted report.
``judgements``: one row per judgement of a blinded comparison set of the study, submitted or not.
Column meanings are documented in :data:`READING_COLUMNS`, :data:`LIKERT_COLUMNS`, :data:`CHOICE_COLUMNS` and
:data:`JUDGEMENT_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from studyapp.db.models import (
    STATUS_SUBMITTED,
    Arm,
    Assignment,
    Case,
    QuestionAnswer,
    ReaderStudy,
    Report,
    User,
)
from studyapp.services.comparison_results import candidate_outcome, set_assignments, submitted_reader_ids
from studyapp.services.comparisons import list_comparison_sets

READING_COLUMNS: dict[str, str] = {
    "assignment_id": "Assignment.id (reader x case x arm)",
    "report_id": "Report.id, <NA> when the reader never opened the case",
    "reader": "reader's username",
    "case": "Case.case_key",
    "case_label": "Case.label: normal / abnormal / <NA>",
    "arm": "Arm.code: template / llm / model / ...",
    "position": "position in the reader's worklist",
    "practice": "Case.is_practice: a practice read (never counted; analysis.skipped leaves it out)",
    "status": "Report.status (new / in_progress / submitted); 'new' when no report exists",
    "draft_text": "starting text the reader was given",
    "final_text": "submitted text; <NA> unless submitted",
    "active_seconds": "active reading time from the platform timer, seconds",
    "opened_at": "first opening, UTC",
    "submitted_at": "submission, UTC",
}
LIKERT_COLUMNS: dict[str, str] = {
    "assignment_id": "Assignment.id",
    "reader": "reader's username",
    "case": "Case.case_key",
    "arm": "Arm.code",
    "question": "Likert question key (confidence, mental_demand, ...)",
    "value": "answer on the scale it was given",
    "scale_min": "lowest value of that scale",
    "scale_max": "highest value of that scale",
}
CHOICE_COLUMNS: dict[str, str] = {
    "assignment_id": "Assignment.id",
    "reader": "reader's username",
    "case": "Case.case_key",
    "arm": "Arm.code",
    "question": "question code (single_choice, multiple_choice or yes_no)",
    "choice": "one chosen option (yes / no for yes_no); a multiple choice answer gives one row per option",
}

JUDGEMENT_COLUMNS: dict[str, str] = {
    "set": "ComparisonSet.name",
    "candidate_source": "the set's candidate (AI) source",
    "reader": "reader's username",
    "case": "Case.case_key of the pair",
    "case_label": "Case.label: normal / abnormal / <NA>",
    "practice": "Case.is_practice: a practice case's judgement (never counted; analysis.skipped leaves it out)",
    "candidate_outcome": "better / equivalent / worse for the candidate source",
    "submitted": "the reader has submitted the set (only submitted judgements count)",
}


@dataclass(frozen=True)
class StudyFrames:
    """Tidy frames of one reader study.

    Attributes:
        study_name: ReaderStudy.name.
        arms: arm codes in creation order (the first is the reference arm when there is no ``template``).
        readings: see :data:`READING_COLUMNS`.
        likert: see :data:`LIKERT_COLUMNS`.
        choices: see :data:`CHOICE_COLUMNS`.
        arm_labels: arm code -> the study's label for it (Arm.label, e.g. "MedVersa draft"); codes without an
            entry are shown by their code.
        judgements: see :data:`JUDGEMENT_COLUMNS`.
    """

    study_name: str
    arms: tuple[str, ...]
    readings: pd.DataFrame
    likert: pd.DataFrame
    choices: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(CHOICE_COLUMNS)))
    arm_labels: dict[str, str] = field(default_factory=dict)
    judgements: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(JUDGEMENT_COLUMNS)))

    def arm_label(self, arm: str) -> str:
        """The study's label of ``arm``, or the code when it has none."""
        return self.arm_labels.get(arm) or arm


def _chosen(definition: dict, value) -> list[str]:
    if definition.get("kind") == "yes_no":
        return ["yes" if value else "no"]
    if definition.get("kind") == "single_choice":
        return [value]
    return list(value) if definition.get("kind") == "multiple_choice" else []


def _find_study(session: Session, study: str | int) -> ReaderStudy:
    column = ReaderStudy.id if isinstance(study, int) else ReaderStudy.name
    found = session.scalar(select(ReaderStudy).where(column == study))
    if found is None:
        names = session.scalars(select(ReaderStudy.name)).all()
        raise LookupError(f"no reader study {study!r} in the database (studies: {names})")
    return found


def load_study(session_factory: sessionmaker[Session], study: str | int) -> StudyFrames:
    """Read one reader study (by name, or by id when ``study`` is an int) into tidy frames.

    Raises:
        LookupError: no such study (the message lists the studies that exist).
    """
    with session_factory() as session:
        found = _find_study(session, study)
        arm_rows = session.execute(select(Arm.code, Arm.label).where(Arm.study_id == found.id).order_by(Arm.id)).all()
        arms = tuple(code for code, _ in arm_rows)
        rows = session.execute(
            select(Assignment, User.username, Case.case_key, Case.label, Case.is_practice, Arm.code, Report)
            .join(User, Assignment.reader_id == User.id)
            .join(Case, Assignment.case_id == Case.id)
            .join(Arm, Assignment.arm_id == Arm.id)
            .outerjoin(Report, Report.assignment_id == Assignment.id)
            .where(Assignment.study_id == found.id)
            .order_by(User.username, Assignment.position)
        ).all()
        readings = pd.DataFrame(
            [
                {
                    "assignment_id": a.id,
                    "report_id": r.id if r else None,
                    "reader": username,
                    "case": case_key,
                    "case_label": label,
                    "arm": arm,
                    "position": a.position,
                    "practice": practice,
                    "status": r.status if r else "new",
                    "draft_text": r.draft_text if r else None,
                    "final_text": r.final_text if r and r.status == STATUS_SUBMITTED else None,
                    "active_seconds": r.active_seconds if r else None,
                    "opened_at": r.opened_at if r else None,
                    "submitted_at": r.submitted_at if r else None,
                }
                for a, username, case_key, label, practice, arm, r in rows
            ],
            columns=list(READING_COLUMNS),
        )
        answers = session.execute(
            select(QuestionAnswer, Assignment.id, User.username, Case.case_key, Arm.code)
            .join(Report, QuestionAnswer.report_id == Report.id)
            .join(Assignment, Report.assignment_id == Assignment.id)
            .join(User, Assignment.reader_id == User.id)
            .join(Case, Assignment.case_id == Case.id)
            .join(Arm, Assignment.arm_id == Arm.id)
            .where(Assignment.study_id == found.id, Report.status == STATUS_SUBMITTED)
        ).all()
        likert = pd.DataFrame(
            [
                {
                    "assignment_id": assignment_id,
                    "reader": username,
                    "case": case_key,
                    "arm": arm,
                    "question": answer.question,
                    "value": answer.value,
                    "scale_min": answer.definition.get("min"),
                    "scale_max": answer.definition.get("max"),
                }
                for answer, assignment_id, username, case_key, arm in answers
                if answer.definition.get("kind") == "likert"
            ],
            columns=list(LIKERT_COLUMNS),
        )
        choices = pd.DataFrame(
            [
                {"assignment_id": assignment_id, "reader": username, "case": case_key, "arm": arm,
                 "question": answer.question, "choice": choice}
                for answer, assignment_id, username, case_key, arm in answers
                for choice in _chosen(answer.definition, answer.value)
            ],
            columns=list(CHOICE_COLUMNS),
        )
        return StudyFrames(found.name, arms, readings, likert, choices, {code: label for code, label in arm_rows},
                           _judgements(session, found))


def _judgements(session: Session, study: ReaderStudy) -> pd.DataFrame:
    """Every judgement of the study's comparison sets (:data:`JUDGEMENT_COLUMNS`)."""
    rows = []
    for comparison_set in list_comparison_sets(session, study):
        submitted = submitted_reader_ids(session, comparison_set.id)
        for assignment in set_assignments(session, comparison_set.id):
            if assignment.judgement is None:
                continue
            rows.append({
                "set": comparison_set.name, "candidate_source": comparison_set.candidate_source,
                "reader": assignment.reader.username, "case": assignment.pair.case.case_key,
                "case_label": assignment.pair.case.label, "practice": bool(assignment.pair.case.is_practice),
                "candidate_outcome": candidate_outcome(assignment, comparison_set.candidate_source),
                "submitted": assignment.reader_id in submitted,
            })
    return pd.DataFrame(rows, columns=list(JUDGEMENT_COLUMNS))
