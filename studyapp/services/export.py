"""Coordinator views: progress per reader and the reads table (one row per reader x case), exported as CSV.
Practice reads are rows like the others, flagged in the ``practice`` column; progress counts them apart.

These views are unblinded (arm and draft source) and only for coordinators.
"""

from pathlib import Path

import pandas as pd
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from studyapp.db.models import (
    STATUS_NEW,
    STATUS_SUBMITTED,
    Arm,
    Assignment,
    Case,
    Draft,
    ReaderStudy,
    Report,
    ReportVersion,
    User,
)
from studyapp.services import audit, questions, safe_csv
from studyapp.services.reads_columns import READS_COLUMNS

#: After these columns comes one column per question of the study, named by its code, in the study's order
#: (by default ``confidence`` and ``mental_demand``): the answer (a multiple choice as ``"a; b"``, yes/no as
#: ``yes``/``no``, a number in the question's unit), empty when unanswered. The definitions (scale, labels,
#: choices, unit) are in :func:`question_columns` and ``python app.py questions STUDY``.


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def question_columns(study: ReaderStudy) -> dict[str, str]:
    """The reads export's question columns: code -> description of the question (kind, scale or choices, unit)."""
    return {q["code"]: questions.describe(q) for q in study.questions}


def reads_table(session: Session, study: ReaderStudy) -> pd.DataFrame:
    """One row per reader x case of ``study``: the columns of :data:`READS_COLUMNS`, then one column per question
    of the study (:func:`question_columns`); unread rows included."""
    assignments = session.scalars(
        select(Assignment)
        .where(Assignment.study_id == study.id)
        .options(
            selectinload(Assignment.reader),
            selectinload(Assignment.case),
            selectinload(Assignment.arm),
            selectinload(Assignment.report).selectinload(Report.answers),
        )
        .order_by(Assignment.reader_id, Assignment.position)
    )
    n_versions = dict(session.execute(  # counted by the database: the versions' texts are never loaded
        select(ReportVersion.report_id, func.count())
        .join(Report, Report.id == ReportVersion.report_id)
        .join(Assignment, Assignment.id == Report.assignment_id)
        .where(Assignment.study_id == study.id)
        .group_by(ReportVersion.report_id)
    ).all())
    drafts = {
        (d.case_id, d.arm_id): d
        for d in session.scalars(select(Draft).join(Case).where(Case.study_id == study.id))
    }
    codes, rows = list(question_columns(study)), []
    for a in assignments:
        draft, report = drafts.get((a.case_id, a.arm_id)), a.report
        row = {
            "study": study.name,
            "reader": a.reader.username,
            "case_key": a.case.case_key,
            "study_instance_uid": a.case.study_instance_uid,
            "case_label": a.case.label,
            "position": a.position,
            "practice": a.case.is_practice,
            "arm": a.arm.code,
            "draft_source": draft.source if draft else None,
            "draft_is_sample": draft.is_sample if draft else None,
            "status": report.status if report else STATUS_NEW,
            "opened_at": _iso(report.opened_at) if report else None,
            "submitted_at": _iso(report.submitted_at) if report else None,
            "active_seconds": round(report.active_seconds, 1) if report else None,
            "wall_seconds": (
                round((report.submitted_at - report.opened_at).total_seconds(), 1)
                if report and report.submitted_at
                else None
            ),
            "draft_text": report.draft_text if report else (draft.text if draft else None),
            "final_text": report.final_text if report else None,
            "chars_changed": (
                Levenshtein.distance(report.draft_text, report.final_text)
                if report and report.final_text is not None
                else None
            ),
            "n_autosaves": n_versions.get(report.id, 0) if report else 0,
        }
        answers = {r.question: r.value for r in report.answers} if report else {}
        for code in codes:
            row[code] = questions.export_value(answers[code]) if code in answers else None
        rows.append(row)
    return pd.DataFrame(rows, columns=[*READS_COLUMNS, *codes])


def export_reads_csv(session: Session, study: ReaderStudy, path: str | Path) -> pd.DataFrame:
    """Write :func:`reads_table` to ``path`` and return the table: JSON Lines with the texts verbatim when ``path``
    ends in ``.jsonl``, else UTF-8 CSV with formula cells neutralised (:mod:`studyapp.services.safe_csv`: a report
    text starting with ``=`` gets a leading ``'``)."""
    table = reads_table(session, study)
    if Path(path).suffix.lower() == ".jsonl":
        safe_csv.write_jsonl(table, path)
    else:
        safe_csv.write_csv(table, path)
    audit.record(session, "reads_exported", study_id=study.id, file=str(path), rows=len(table))
    return table


def _read_states(session: Session, study: ReaderStudy) -> pd.DataFrame:
    """One row per reader x case of ``study`` with only what the progress views count: reader, case_key, practice,
    arm, status and active_seconds (one query; no texts, versions or answers are loaded, so a coordinator watching
    progress costs the readers' saves next to nothing)."""
    rows = session.execute(
        select(User.username, Case.case_key, Case.is_practice, Arm.code, Report.status, Report.active_seconds)
        .select_from(Assignment)
        .join(User, User.id == Assignment.reader_id)
        .join(Case, Case.id == Assignment.case_id)
        .join(Arm, Arm.id == Assignment.arm_id)
        .outerjoin(Report, Report.assignment_id == Assignment.id)
        .where(Assignment.study_id == study.id)
    ).all()
    table = pd.DataFrame(rows, columns=["reader", "case_key", "practice", "arm", "status", "active_seconds"])
    table["practice"] = table["practice"].astype(bool)
    table["status"] = table["status"].fillna(STATUS_NEW)
    return table


def progress_table(session: Session, study: ReaderStudy) -> pd.DataFrame:
    """Per reader: counted cases assigned, new, in progress, submitted, their active minutes so far, and practice
    cases submitted."""
    reads = _read_states(session, study)
    if reads.empty:
        return pd.DataFrame(columns=["reader", "assigned", "new", "in_progress", "submitted", "active_minutes",
                                     "practice_submitted"])
    practice_done = reads[reads["practice"] & (reads["status"] == STATUS_SUBMITTED)].groupby("reader").size()
    grouped = reads[~reads["practice"]].groupby("reader")
    table = pd.DataFrame(
        {
            "assigned": grouped.size(),
            "new": grouped["status"].apply(lambda s: int((s == STATUS_NEW).sum())),
            "in_progress": grouped["status"].apply(lambda s: int((s == "in_progress").sum())),
            "submitted": grouped["status"].apply(lambda s: int((s == STATUS_SUBMITTED).sum())),
            "active_minutes": (grouped["active_seconds"].sum() / 60).round(1),
        }
    )
    table["practice_submitted"] = practice_done.reindex(table.index, fill_value=0).astype(int)
    return table.reset_index()


def case_progress_table(session: Session, study: ReaderStudy) -> pd.DataFrame:
    """Per counted case (``case_key``): readers assigned, reads submitted under each arm (``submitted_<arm code>``),
    all submitted, and the median active seconds of the submitted reads (empty until one is submitted)."""
    reads = _read_states(session, study)
    arms = sorted(a.code for a in study.arms)
    columns = ["case_key", "assigned", *(f"submitted_{arm}" for arm in arms), "submitted", "median_active_seconds"]
    reads = reads[~reads["practice"]] if not reads.empty else reads
    if reads.empty:
        return pd.DataFrame(columns=columns)
    done = reads[reads["status"] == STATUS_SUBMITTED]
    table = pd.DataFrame({"assigned": reads.groupby("case_key").size()})
    per_arm = done.groupby(["case_key", "arm"]).size().unstack(fill_value=0).reindex(columns=arms, fill_value=0)
    for arm in arms:
        table[f"submitted_{arm}"] = per_arm[arm].reindex(table.index, fill_value=0).astype(int)
    table["submitted"] = done.groupby("case_key").size().reindex(table.index, fill_value=0).astype(int)
    table["median_active_seconds"] = done.groupby("case_key")["active_seconds"].median().reindex(table.index).round(1)
    return table.reset_index()[columns]
