"""Blinded A/B comparison, the reader's side: blinded views of the pairs, judgements (revisable until the set is
submitted), comments on passages with the paper's 1/2/4/5 scale, and submission (paper section 2.3, Fig. 4).

Everything a reader receives comes from :class:`BlindedPair` / :class:`ReaderSetSummary`: pair id and position,
case id, clinical context, Report A and Report B -- never a source, model or arm name. Sets and their stored side
order are built in :mod:`studyapp.services.comparisons`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from studyapp.clock import utcnow
from studyapp.db.comparisons import (
    CHOICES,
    COMMENT_SCORES,
    SIDES,
    ComparisonAssignment,
    ComparisonComment,
    ComparisonJudgement,
    ComparisonPair,
    ComparisonSet,
    ComparisonSubmission,
)
from studyapp.db.models import (
    Case,
    User,
)
from studyapp.services import audit
from studyapp.services.comparisons import get_comparison_set, side_texts
from studyapp.services.errors import InvalidInput, NotFound, PermissionDenied

# ---------------------------------------------------------------------------------------------------------------
# Reader: blinded views, judgements, comments, submission


@dataclass(frozen=True)
class BlindedComment:
    """A reader's own comment as the reader sees it (sides only)."""

    comment_id: int
    side: str | None
    start: int | None
    end: int | None
    passage: str
    score: int
    text: str


@dataclass(frozen=True)
class BlindedPair:
    """One pair as a reader sees it: no source, model or arm name, and no set-level order.

    Attributes:
        position: 0-based position in this reader's list.
        context: clinical context of the case (age, sex, study description, indication, comparison).
        choice: the reader's current judgement (``A``, ``B``, ``equivalent``) or None.
    """

    pair_id: int
    position: int
    case_id: int
    context: str
    text_a: str
    text_b: str
    choice: str | None
    comments: tuple[BlindedComment, ...]


@dataclass(frozen=True)
class ReaderSetSummary:
    """A comparison set on a reader's list, with progress (blinded: the set name is checked free of sources)."""

    set_id: int
    name: str
    n_pairs: int
    n_judged: int
    submitted: bool


def clinical_context(case: Case) -> str:
    """One-line clinical context shown with the reports (paper section 2.3: demographics, comparison, indication)."""
    parts = [
        ("Age", case.patient_age), ("Sex", case.patient_sex), ("Study", case.study_description),
        ("Indication", case.indication), ("Comparison", case.comparison),
    ]
    return " · ".join(f"{label}: {value}" for label, value in parts if value) or "No clinical information."


def _is_submitted(session: Session, set_id: int, reader_id: int) -> bool:
    return session.scalar(
        select(ComparisonSubmission.id).where(
            ComparisonSubmission.set_id == set_id, ComparisonSubmission.reader_id == reader_id
        )
    ) is not None


def reader_comparison_sets(session: Session, reader: User) -> list[ReaderSetSummary]:
    """The comparison sets with pairs assigned to ``reader``, oldest first, with progress."""
    summaries = []
    sets = session.scalars(
        select(ComparisonSet)
        .where(
            ComparisonSet.id.in_(
                select(ComparisonAssignment.set_id).where(ComparisonAssignment.reader_id == reader.id)
            )
        )
        .order_by(ComparisonSet.id)
    )
    for comparison_set in sets:
        own = _own_assignments(session, reader, comparison_set.id)
        summaries.append(
            ReaderSetSummary(
                comparison_set.id, comparison_set.name, len(own), sum(a.judgement is not None for a in own),
                _is_submitted(session, comparison_set.id, reader.id),
            )
        )
    return summaries


def _own_assignments(session: Session, reader: User, set_id: int) -> list[ComparisonAssignment]:
    return list(
        session.scalars(
            select(ComparisonAssignment)
            .where(ComparisonAssignment.set_id == set_id, ComparisonAssignment.reader_id == reader.id)
            .options(
                selectinload(ComparisonAssignment.pair).selectinload(ComparisonPair.case),
                selectinload(ComparisonAssignment.judgement),
                selectinload(ComparisonAssignment.comments),
            )
            .order_by(ComparisonAssignment.position)
        )
    )


def _blind(assignment: ComparisonAssignment) -> BlindedPair:
    text_a, text_b = side_texts(assignment)
    return BlindedPair(
        pair_id=assignment.pair_id,
        position=assignment.position,
        case_id=assignment.pair.case_id,
        context=clinical_context(assignment.pair.case),
        text_a=text_a,
        text_b=text_b,
        choice=assignment.judgement.choice if assignment.judgement else None,
        comments=tuple(
            BlindedComment(c.id, c.side, c.start, c.end, c.passage, c.score, c.text) for c in assignment.comments
        ),
    )


def blinded_pairs(session: Session, reader: User, set_id: int) -> list[BlindedPair]:
    """The reader's pairs of set ``set_id`` in the reader's order, with current judgements and comments.

    Raises:
        NotFound: no such set.
        PermissionDenied: no pair of this set is assigned to ``reader``.
    """
    get_comparison_set(session, set_id)
    own = _own_assignments(session, reader, set_id)
    if not own:
        raise PermissionDenied(f"no pair of comparison set {set_id} is assigned to {reader.username!r}")
    return [_blind(assignment) for assignment in own]


def _own_open_assignment(session: Session, reader: User, pair_id: int) -> ComparisonAssignment:
    pair = session.get(ComparisonPair, pair_id)
    if pair is None:
        raise NotFound(f"unknown comparison pair {pair_id}")
    assignment = session.scalar(
        select(ComparisonAssignment).where(
            ComparisonAssignment.pair_id == pair_id, ComparisonAssignment.reader_id == reader.id
        )
    )
    if assignment is None:
        raise PermissionDenied(f"comparison pair {pair_id} is not assigned to {reader.username!r}")
    if _is_submitted(session, assignment.set_id, reader.id):
        raise InvalidInput(f"{reader.username!r} has already submitted this comparison set; judgements are final")
    return assignment


def _log(session: Session, kind: str, reader: User, assignment: ComparisonAssignment, **detail) -> None:
    audit.record(session, kind, user=reader, study_id=assignment.pair.comparison_set.study_id,
                 comparison_set_id=assignment.set_id, pair_id=assignment.pair_id, **detail)


def save_judgement(session: Session, reader: User, pair_id: int, choice: str) -> BlindedPair:
    """Record or revise the reader's choice for a pair: ``A``, ``B`` or ``equivalent`` (paper Fig. 4b).

    Returns:
        the updated blinded pair.

    Raises:
        InvalidInput: a choice outside :data:`~studyapp.db.comparisons.CHOICES`, or the set already submitted.
        NotFound: no such pair.
        PermissionDenied: the pair is not assigned to ``reader``.
    """
    if choice not in CHOICES:
        raise InvalidInput(f"unknown choice {choice!r}; expected one of {list(CHOICES)}")
    assignment = _own_open_assignment(session, reader, pair_id)
    judgement = assignment.judgement
    if judgement is None:
        assignment.judgement = ComparisonJudgement(choice=choice)
    elif judgement.choice != choice:
        judgement.choice = choice
        judgement.updated_at = utcnow()
        judgement.revisions += 1
    _log(session, "comparison_judged", reader, assignment, choice=choice)
    session.flush()
    return _blind(assignment)


def add_comment(
    session: Session,
    reader: User,
    pair_id: int,
    score: int,
    text: str = "",
    side: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> BlindedComment:
    """Add a scored comment on a passage of Report A or B, on a whole report, or on the pair (paper Fig. 4d).

    Args:
        score: 1 major finding with a significant error, 2 minor finding or less critical error, 4 significant
            positive aspect, 5 minor positive aspect.
        side: ``A``, ``B`` or None (a comment on the pair as a whole).
        start, end: half-open character offsets of the passage in that side's text (Python string indices);
            both None for a comment on the whole report.

    Raises:
        InvalidInput: a score outside {1, 2, 4, 5}, an unknown side, offsets without a side, offsets given
            singly, outside the report or empty, or the set already submitted.
        NotFound, PermissionDenied: as for :func:`save_judgement`.
    """
    if isinstance(score, bool) or score not in COMMENT_SCORES:
        raise InvalidInput(f"comment score {score!r} is not one of 1, 2, 4, 5 ({COMMENT_SCORES})")
    if side is not None and side not in SIDES:
        raise InvalidInput(f"unknown report side {side!r}; expected 'A', 'B' or none")
    if (start is None) != (end is None):
        raise InvalidInput("a passage needs both start and end offsets")
    if side is None and start is not None:
        raise InvalidInput("passage offsets given without a report side (A or B)")
    assignment = _own_open_assignment(session, reader, pair_id)
    passage = ""
    if start is not None:
        report = side_texts(assignment)[SIDES.index(side)]
        if not 0 <= start < end <= len(report):
            raise InvalidInput(
                f"passage [{start}, {end}) is empty or outside Report {side} ({len(report)} characters)"
            )
        passage = report[start:end]
    comment = ComparisonComment(side=side, start=start, end=end, passage=passage, score=score, text=text.strip())
    assignment.comments.append(comment)
    session.flush()
    _log(session, "comparison_commented", reader, assignment, comment_id=comment.id, score=score)
    return BlindedComment(comment.id, side, start, end, passage, score, comment.text)


def delete_comment(session: Session, reader: User, comment_id: int) -> None:
    """Delete one of the reader's own comments before the set is submitted.

    Raises:
        NotFound: no such comment. PermissionDenied: another reader's comment.
        InvalidInput: the set is already submitted.
    """
    comment = session.get(ComparisonComment, comment_id)
    if comment is None:
        raise NotFound(f"unknown comment {comment_id}")
    if comment.assignment.reader_id != reader.id:
        raise PermissionDenied(f"comment {comment_id} is not {reader.username!r}'s")
    assignment = _own_open_assignment(session, reader, comment.assignment.pair_id)
    session.delete(comment)
    _log(session, "comparison_comment_deleted", reader, assignment, comment_id=comment_id)
    session.flush()
    session.expire(assignment, ["comments"])


def submit_comparison_set(session: Session, reader: User, set_id: int) -> ComparisonSubmission:
    """Submit the reader's judgements of a set; afterwards they can no longer be revised.

    Raises:
        NotFound, PermissionDenied: as for :func:`blinded_pairs`.
        InvalidInput: pairs still without a judgement (listed by 1-based position), or already submitted.
    """
    own = blinded_pairs(session, reader, set_id)
    if _is_submitted(session, set_id, reader.id):
        raise InvalidInput(f"{reader.username!r} has already submitted comparison set {set_id}")
    missing = [pair.position + 1 for pair in own if pair.choice is None]
    if missing:
        raise InvalidInput(f"pair(s) at position {missing} have no judgement yet")
    submission = ComparisonSubmission(set_id=set_id, reader_id=reader.id)
    session.add(submission)
    comparison_set = get_comparison_set(session, set_id)
    audit.record(session, "comparison_submitted", user=reader, study_id=comparison_set.study_id,
                 comparison_set_id=set_id)
    session.flush()
    return submission
