"""Blinded A/B comparison, the coordinator's results: unblinded per-pair and per-reader tables, preference rates
as the paper reports them (share of cases with the AI report equivalent or better, a case counting once, over
submitted judgements, with 95% CIs for pairs judged by several readers: :mod:`analysis.preferences`), the
per-judgement rate labelled as such, a position-bias check, and the CSV export of every judgement and comment.

Judgements of practice cases (``Case.is_practice``, in a set created with "include practice cases") never count in
a preference rate, a reader's share or the position-bias check, like practice reads (paper section 4.3); the
results say how many were left out, and the export keeps them, flagged in its ``practice`` column.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from analysis.preferences import preference_rates
from analysis.skipped import practice_judgements
from studyapp.db.comparisons import (
    CHOICE_EQUIVALENT,
    SIDE_A,
    SIDE_B,
    ComparisonAssignment,
    ComparisonComment,
    ComparisonPair,
    ComparisonSubmission,
)
from studyapp.db.models import (
    User,
)
from studyapp.services.comparisons import (
    get_comparison_set,
    require_coordinator,
    side_sources,
)
from studyapp.services import safe_csv

#: Candidate outcome codes of a judgement, relative to the set's ``candidate_source``.
OUTCOME_BETTER, OUTCOME_EQUIVALENT, OUTCOME_WORSE = "better", "equivalent", "worse"

#: Columns of the CSV export (one row per judgement, then one row per comment), with their meaning.
EXPORT_COLUMNS = {
    "record": "judgement or comment",
    "set": "comparison set name",
    "pair_id": "comparison pair id",
    "case_key": "case identifier within the study",
    "case_label": "normal / abnormal label of the case, if known",
    "practice": "true for a practice case (Case.is_practice): never counted in a preference rate",
    "reader": "reader username",
    "position": "position of the pair in the reader's list (1-based)",
    "report_a_source": "source shown to this reader as Report A",
    "report_b_source": "source shown to this reader as Report B",
    "choice": "A / B / equivalent as the reader chose (judgement rows)",
    "preferred_source": "source of the preferred report; empty when equivalent (judgement rows)",
    "candidate_outcome": "better / equivalent / worse for the set's candidate source (judgement rows)",
    "revisions": "times the judgement was changed after the first choice (judgement rows)",
    "judged_at": "last change of the judgement, UTC ISO 8601 (judgement rows)",
    "submitted": "true when the reader has submitted the set",
    "comment_id": "comment id (comment rows)",
    "comment_side": "A / B, or empty for a comment on the pair (comment rows)",
    "comment_source": "source of the commented report (comment rows)",
    "start": "first character of the passage, 0-based offset into that report (comment rows)",
    "end": "one past the last character of the passage (comment rows)",
    "passage": "quoted passage (comment rows)",
    "score": "1 major error, 2 minor error, 4 significant positive, 5 minor positive (comment rows)",
    "comment": "free-text comment (comment rows)",
}


# ---------------------------------------------------------------------------------------------------------------
# Coordinator: unblinded results


@dataclass(frozen=True)
class PositionBias:
    """How often Report A was chosen, to check for a position preference.

    Attributes:
        share_a: A choices / (A + B choices); 0.5 means no position preference.
        p_value: two-sided exact binomial test of share_a = 0.5 (``scipy.stats.binomtest``); NaN without choices.
    """

    n_a: int
    n_b: int
    n_equivalent: int
    share_a: float
    p_value: float


@dataclass(frozen=True)
class ComparisonResults:
    """Unblinded results of a set.

    Attributes:
        judgements: one row per judgement (columns as the judgement rows of :data:`EXPORT_COLUMNS`).
        per_pair: one row per pair: case, label, practice flag, sources, judgement counts, comment count.
        per_reader: one row per reader: assigned, judged (practice cases included), then over the judgements of
            counted cases: A / B / equivalent counts, share_a, candidate equivalent-or-better share; submitted.
        preference: index ``overall``, ``normal``, ``abnormal``; the columns of
            :data:`analysis.preferences.PREFERENCE_COLUMNS` but ``group``: counts, ``equivalent_or_better`` per
            case (primary) with ``ci_low`` / ``ci_high``, and the per-judgement rate with its CI. Submitted
            judgements of counted (not practice) cases only.
        position_bias: see :class:`PositionBias` (every judgement of a counted case made so far).
        left_out: lines saying what the rates leave out: the practice cases' judgements (one line, when there are
            any), then one line per reader whose other judgements are left out (set not submitted).
        practice_left_out: judgements of practice cases, all left out.
    """

    candidate_source: str
    judgements: pd.DataFrame
    per_pair: pd.DataFrame
    per_reader: pd.DataFrame
    preference: pd.DataFrame
    position_bias: PositionBias
    left_out: list[str]
    practice_left_out: int


def set_assignments(session: Session, set_id: int) -> list[ComparisonAssignment]:
    """Every reader x pair of set ``set_id`` by reader id then position, with pair, case, reader, judgement, comments."""
    return list(
        session.scalars(
            select(ComparisonAssignment)
            .where(ComparisonAssignment.set_id == set_id)
            .options(
                selectinload(ComparisonAssignment.pair).selectinload(ComparisonPair.case),
                selectinload(ComparisonAssignment.reader),
                selectinload(ComparisonAssignment.judgement),
                selectinload(ComparisonAssignment.comments),
            )
            .order_by(ComparisonAssignment.reader_id, ComparisonAssignment.position)
        )
    )


def preferred_source(assignment: ComparisonAssignment) -> str | None:
    """The source whose report the reader preferred (None when equivalent or not judged yet)."""
    if assignment.judgement is None or assignment.judgement.choice == CHOICE_EQUIVALENT:
        return None
    a_source, b_source = side_sources(assignment)
    return a_source if assignment.judgement.choice == SIDE_A else b_source


def candidate_outcome(assignment: ComparisonAssignment, candidate: str) -> str | None:
    """``better`` / ``equivalent`` / ``worse`` for ``candidate`` in this judgement (None when not judged)."""
    if assignment.judgement is None:
        return None
    preferred = preferred_source(assignment)
    if preferred is None:
        return OUTCOME_EQUIVALENT
    return OUTCOME_BETTER if preferred == candidate else OUTCOME_WORSE


def _pair_columns(assignment: ComparisonAssignment, record: str, set_name: str, submitted: bool) -> dict:
    """The columns every export row of one reader x pair shares."""
    a_source, b_source = side_sources(assignment)
    return {
        "record": record,
        "set": set_name,
        "pair_id": assignment.pair_id,
        "case_key": assignment.pair.case.case_key,
        "case_label": assignment.pair.case.label,
        "practice": bool(assignment.pair.case.is_practice),
        "reader": assignment.reader.username,
        "position": assignment.position + 1,
        "report_a_source": a_source,
        "report_b_source": b_source,
        "submitted": submitted,
    }


def _judgement_row(assignment: ComparisonAssignment, set_name: str, candidate: str, submitted: bool) -> dict:
    judgement = assignment.judgement
    return _pair_columns(assignment, "judgement", set_name, submitted) | {
        "choice": judgement.choice,
        "preferred_source": preferred_source(assignment),
        "candidate_outcome": candidate_outcome(assignment, candidate),
        "revisions": judgement.revisions,
        "judged_at": judgement.updated_at.isoformat(),
    }


def _comment_row(assignment: ComparisonAssignment, comment: ComparisonComment, set_name: str, submitted: bool) -> dict:
    row = _pair_columns(assignment, "comment", set_name, submitted)
    return row | {
        "comment_id": comment.id,
        "comment_side": comment.side,
        "comment_source": {SIDE_A: row["report_a_source"], SIDE_B: row["report_b_source"]}.get(comment.side),
        "start": comment.start,
        "end": comment.end,
        "passage": comment.passage,
        "score": comment.score,
        "comment": comment.text,
    }


def submitted_reader_ids(session: Session, set_id: int) -> set[int]:
    """Ids of the readers who have submitted set ``set_id``."""
    return set(session.scalars(select(ComparisonSubmission.reader_id).where(ComparisonSubmission.set_id == set_id)))


def comparison_table(session: Session, coordinator: User, set_id: int) -> pd.DataFrame:
    """Every judgement and comment of a set, unblinded, with the columns of :data:`EXPORT_COLUMNS`.

    Judgement rows come first (by reader, then position), then comment rows in the same order.

    Raises:
        PermissionDenied: ``coordinator`` is not a coordinator. NotFound: no such set.
    """
    require_coordinator(coordinator)
    comparison_set = get_comparison_set(session, set_id)
    submitted = submitted_reader_ids(session, set_id)
    assignments = set_assignments(session, set_id)
    rows = [
        _judgement_row(a, comparison_set.name, comparison_set.candidate_source, a.reader_id in submitted)
        for a in assignments
        if a.judgement is not None
    ]
    rows += [
        _comment_row(a, comment, comparison_set.name, a.reader_id in submitted)
        for a in assignments
        for comment in a.comments
    ]
    frame = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))
    for column in ("pair_id", "position", "revisions", "comment_id", "start", "end", "score"):
        frame[column] = frame[column].astype("Int64")
    return frame


def export_comparison_csv(session: Session, coordinator: User, set_id: int, path: str | Path) -> pd.DataFrame:
    """Write :func:`comparison_table` to ``path`` and return it: JSON Lines with the texts verbatim when ``path``
    ends in ``.jsonl``, else UTF-8 CSV with formula cells neutralised (:mod:`studyapp.services.safe_csv`).

    Raises:
        PermissionDenied, NotFound: as for :func:`comparison_table`.
    """
    frame = comparison_table(session, coordinator, set_id)
    if Path(path).suffix.lower() == ".jsonl":
        safe_csv.write_jsonl(frame, path)
    else:
        safe_csv.write_csv(frame, path)
    return frame


def comparison_results(
    session: Session, coordinator: User, set_id: int, *, n_resamples: int = 1000, seed: int | None = None
) -> ComparisonResults:
    """Unblinded results: tables, preference rates with 95% CIs, and the position-bias check.

    Preference rates are for the set's ``candidate_source`` over submitted judgements of counted cases, per case
    (primary) and per judgement, overall and by case label (``normal`` / ``abnormal``):
    :func:`analysis.preferences.preference_rates`. Practice cases' judgements are left out of every rate, share and
    the position-bias check, and counted in ``practice_left_out`` (module docstring).

    Args:
        n_resamples: resamples of each one-way bootstrap of :func:`analysis.intervals.crossed_intervals`.
        seed: bootstrap seed; default the set's seed.

    Raises:
        PermissionDenied: not a coordinator. NotFound: no such set.
    """
    table = comparison_table(session, coordinator, set_id)
    comparison_set = get_comparison_set(session, set_id)
    seed = comparison_set.seed if seed is None else seed
    judgements = table[table["record"] == "judgement"].drop(
        columns=[c for c in EXPORT_COLUMNS if c.startswith("comment") or c in ("start", "end", "passage", "score")]
    ).reset_index(drop=True)
    comments = table[table["record"] == "comment"]

    practice = judgements["practice"].astype(bool)
    not_practice = judgements[~practice]
    counted = not_practice[not_practice["submitted"].astype(bool)]
    preference = preference_rates(
        counted.rename(columns={"case_key": "case"}), n_resamples=n_resamples, seed=seed
    ).set_index("group")
    n_practice = int(practice.sum())
    left_out = [practice_judgements(f"set {comparison_set.name}", n_practice).reason] if n_practice else []
    unsubmitted = not_practice[~not_practice["submitted"].astype(bool)]
    left_out += [f"reader {reader}: {n} judgement(s) left out, the set is not submitted"
                 for reader, n in unsubmitted.groupby("reader").size().items()]

    pairs = list(comparison_set.pairs)
    pair_rows = []
    for pair in pairs:
        own = judgements[judgements["pair_id"] == pair.id]
        pair_rows.append(
            {
                "pair_id": pair.id,
                "case_key": pair.case.case_key,
                "case_label": pair.case.label,
                "practice": bool(pair.case.is_practice),
                "source_1": pair.source_1_name,
                "source_2": pair.source_2_name,
                "n_judgements": len(own),
                "prefer_source_1": int((own["preferred_source"] == pair.source_1_name).sum()),
                "prefer_source_2": int((own["preferred_source"] == pair.source_2_name).sum()),
                "equivalent": int((own["choice"] == CHOICE_EQUIVALENT).sum()),
                "n_comments": int((comments["pair_id"] == pair.id).sum()),
            }
        )
    per_pair = pd.DataFrame(pair_rows)

    submitted = submitted_reader_ids(session, set_id)
    assignments = set_assignments(session, set_id)
    n_assigned = Counter(a.reader_id for a in assignments)
    reader_rows = []
    for reader in sorted({a.reader for a in assignments}, key=lambda user: user.id):
        judged = judgements[judgements["reader"] == reader.username]
        own = judged[~judged["practice"].astype(bool)]
        choices = own["choice"].value_counts()
        n_a, n_b = int(choices.get(SIDE_A, 0)), int(choices.get(SIDE_B, 0))
        reader_rows.append(
            {
                "reader": reader.username,
                "n_assigned": n_assigned[reader.id],
                "n_judged": len(judged),
                "n_a": n_a,
                "n_b": n_b,
                "n_equivalent": int(choices.get(CHOICE_EQUIVALENT, 0)),
                "share_a": n_a / (n_a + n_b) if n_a + n_b else math.nan,
                "equivalent_or_better": (own["candidate_outcome"] != OUTCOME_WORSE).mean() if len(own) else math.nan,
                "submitted": reader.id in submitted,
            }
        )
    per_reader = pd.DataFrame(reader_rows)

    choices = not_practice["choice"].value_counts()
    n_a, n_b = int(choices.get(SIDE_A, 0)), int(choices.get(SIDE_B, 0))
    position_bias = PositionBias(
        n_a=n_a,
        n_b=n_b,
        n_equivalent=int(choices.get(CHOICE_EQUIVALENT, 0)),
        share_a=n_a / (n_a + n_b) if n_a + n_b else math.nan,
        p_value=float(stats.binomtest(n_a, n_a + n_b, 0.5).pvalue) if n_a + n_b else math.nan,
    )
    return ComparisonResults(
        comparison_set.candidate_source, judgements, per_pair, per_reader, preference, position_bias, left_out,
        n_practice,
    )
