"""Blinded A/B report comparison (paper section 2.3, Fig. 4; section 4.3 "Radiologist evaluation"; CIs as in 4.6).

A coordinator builds a :class:`~studyapp.db.comparisons.ComparisonSet` from a study's cases and two report sources,
assigns readers (each pair judged by ``readers_per_pair`` readers), and reads unblinded results. Readers see only
:class:`BlindedPair` views: pair id and position, case id, clinical context, Report A and Report B -- never a
source, model or arm name. For each reader x pair the side order is drawn from a ``random.Random`` seeded with the
set's recorded seed and stored, balanced per reader (each source is Report A for half of a reader's pairs, +-1).

Report sources inside the database are named by spec strings:

- ``reference``: the case's reference report (``Case.reference_report``);
- ``draft:<arm code>``: the immutable draft of that arm (``Draft.text``);
- ``final:<arm code>``: the first submitted final report (``Report.final_text``) written under that arm.

Sets can also be imported from CSV/JSONL rows ``case_key, source_a_name, text_a, source_b_name, text_b``.
Every function takes an open session; the caller owns the transaction (one ``with Session.begin()`` per action),
and every validation error is raised before anything is written.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from studyapp.clock import utcnow
from studyapp.db.comparisons import (
    CHOICE_EQUIVALENT,
    CHOICES,
    COMMENT_SCORES,
    SIDE_A,
    SIDE_B,
    SIDES,
    ComparisonAssignment,
    ComparisonComment,
    ComparisonJudgement,
    ComparisonPair,
    ComparisonSet,
    ComparisonSubmission,
)
from studyapp.db.models import (
    ROLE_COORDINATOR,
    ROLE_READER,
    STATUS_SUBMITTED,
    Assignment,
    Arm,
    AuditEvent,
    Case,
    Draft,
    ReaderStudy,
    Report,
    StudyReader,
    User,
)
from studyapp.services.errors import InvalidInput, NotFound, PermissionDenied

SOURCE_REFERENCE = "reference"
#: Columns an import file must have (CSV header or JSONL keys).
IMPORT_COLUMNS = ("case_key", "source_a_name", "text_a", "source_b_name", "text_b")
#: Case labels reported separately, next to "overall" (``Case.label``).
LABEL_GROUPS = ("normal", "abnormal")
#: Candidate outcome codes of a judgement, relative to the set's ``candidate_source``.
OUTCOME_BETTER, OUTCOME_EQUIVALENT, OUTCOME_WORSE = "better", "equivalent", "worse"

#: Columns of the CSV export (one row per judgement, then one row per comment), with their meaning.
EXPORT_COLUMNS = {
    "record": "judgement or comment",
    "set": "comparison set name",
    "pair_id": "comparison pair id",
    "case_key": "case identifier within the study",
    "case_label": "normal / abnormal label of the case, if known",
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
# Coordinator: building sets and assigning readers


def require_coordinator(user: User) -> None:
    """Raise PermissionDenied unless ``user`` is a coordinator (unblinded data is coordinator-only)."""
    if user.role != ROLE_COORDINATOR:
        raise PermissionDenied(f"{user.username!r} is not a coordinator; unblinded comparison data is coordinator-only")


def get_comparison_set(session: Session, set_id: int) -> ComparisonSet:
    """The comparison set ``set_id``.

    Raises:
        NotFound: no such set.
    """
    comparison_set = session.get(ComparisonSet, set_id)
    if comparison_set is None:
        raise NotFound(f"unknown comparison set {set_id}")
    return comparison_set


def list_comparison_sets(session: Session, study: ReaderStudy) -> list[ComparisonSet]:
    """The comparison sets of ``study``, oldest first."""
    return list(
        session.scalars(select(ComparisonSet).where(ComparisonSet.study_id == study.id).order_by(ComparisonSet.id))
    )


def source_texts(session: Session, study: ReaderStudy, source: str) -> dict[int, str]:
    """Report texts of one source for the cases of ``study`` that have one.

    Args:
        source: ``reference``, ``draft:<arm code>`` or ``final:<arm code>`` (see the module docstring).

    Returns:
        case id -> text (cases without a text for this source are absent).

    Raises:
        InvalidInput: a malformed source spec or an arm code the study does not have.
    """
    if source == SOURCE_REFERENCE:
        return {c.id: c.reference_report for c in study.cases if c.reference_report and c.reference_report.strip()}
    kind, _, arm_code = source.partition(":")
    if kind not in ("draft", "final") or not arm_code:
        raise InvalidInput(
            f"unknown report source {source!r}; expected 'reference', 'draft:<arm code>' or 'final:<arm code>'"
        )
    arm = session.scalar(select(Arm).where(Arm.study_id == study.id, Arm.code == arm_code))
    if arm is None:
        raise InvalidInput(f"report source {source!r}: study {study.name!r} has no arm {arm_code!r}")
    if kind == "draft":
        rows = session.execute(select(Draft.case_id, Draft.text).where(Draft.arm_id == arm.id))
        return {case_id: text for case_id, text in rows if text.strip()}
    rows = session.execute(
        select(Assignment.case_id, Report.final_text)
        .join(Report, Report.assignment_id == Assignment.id)
        .where(Assignment.arm_id == arm.id, Report.status == STATUS_SUBMITTED, Report.final_text.is_not(None))
        .order_by(Report.submitted_at, Report.id)
    )
    texts: dict[int, str] = {}
    for case_id, text in rows:
        if text.strip():
            texts.setdefault(case_id, text)
    return texts


def _names_of_source(session: Session, study: ReaderStudy, source: str) -> set[str]:
    """Words that would tell a reader which source a report is: the source name itself and, for ``draft:``/
    ``final:`` sources, the arm's code and label and the draft sources (e.g. the model name) of that arm."""
    names = {source}
    kind, _, arm_code = source.partition(":")
    arm = session.scalar(select(Arm).where(Arm.study_id == study.id, Arm.code == arm_code)) if arm_code else None
    if kind in ("draft", "final") and arm is not None:
        names |= {arm.code, arm.label}
        names |= set(session.scalars(select(Draft.source).where(Draft.arm_id == arm.id).distinct()))
    return {n.strip() for n in names if n and n.strip()}


def _check_set_options(
    session: Session, study: ReaderStudy, name: str, sources: tuple[str, str], candidate_source: str,
    readers_per_pair: int,
) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("comparison set name is empty")
    if session.scalar(
        select(ComparisonSet).where(ComparisonSet.study_id == study.id, ComparisonSet.name == name)
    ) is not None:
        raise InvalidInput(f"study {study.name!r} already has a comparison set named {name!r}")
    for source in sources:
        if not source.strip():
            raise InvalidInput("a report source name is empty")
        for revealing in _names_of_source(session, study, source):
            if re.search(rf"(?<!\w){re.escape(revealing.lower())}(?!\w)", name.lower()):
                raise InvalidInput(
                    f"comparison set name {name!r} contains {revealing!r}, which names source {source!r}; "
                    "readers see the set name"
                )
    if sources[0] == sources[1]:
        raise InvalidInput(f"both report sources are {sources[0]!r}; a comparison needs two different sources")
    if candidate_source not in sources:
        raise InvalidInput(f"candidate source {candidate_source!r} is not one of the two sources {sources}")
    if readers_per_pair < 1:
        raise InvalidInput(f"readers_per_pair must be at least 1, got {readers_per_pair}")
    return name


def _add_set(
    session: Session, study: ReaderStudy, name: str, sources: tuple[str, str], candidate_source: str,
    seed: int, readers_per_pair: int, rows: list[tuple[Case, str, str]],
) -> ComparisonSet:
    """Validate pair texts, then write the set and its pairs; ``rows`` are (case, text of source 1, of source 2)."""
    identical = [case.case_key for case, text_1, text_2 in rows if text_1.strip() == text_2.strip()]
    if identical:
        raise InvalidInput(f"the two reports are identical for case(s) {identical}; nothing to compare")
    if not rows:
        raise InvalidInput("a comparison set needs at least one pair")
    comparison_set = ComparisonSet(
        study_id=study.id, name=name, seed=seed, readers_per_pair=readers_per_pair, candidate_source=candidate_source
    )
    session.add(comparison_set)
    session.flush()
    for position, (case, text_1, text_2) in enumerate(rows):
        session.add(
            ComparisonPair(
                set_id=comparison_set.id, case_id=case.id, position=position, source_1_name=sources[0],
                text_1=text_1, source_2_name=sources[1], text_2=text_2,
            )
        )
    session.flush()
    return comparison_set


def create_comparison_set(
    session: Session,
    study: ReaderStudy,
    name: str,
    source_1: str,
    source_2: str,
    candidate_source: str,
    *,
    seed: int | None = None,
    readers_per_pair: int = 1,
    case_keys: list[str] | None = None,
) -> ComparisonSet:
    """Create a set pairing two database report sources for each case (paper section 2.3: human vs AI report).

    Args:
        source_1, source_2: source specs (see :func:`source_texts`), e.g. ``"reference"`` and ``"draft:model"``.
        candidate_source: the source under evaluation (the AI report); results give its equivalent-or-better share.
        seed: seed of the side randomisation, recorded on the set; default the study's seed.
        readers_per_pair: how many readers judge each pair (used by :func:`assign_readers`).
        case_keys: the cases to include, in this order; default every case of the study in id order.

    Raises:
        InvalidInput: empty/duplicate name, a name containing a source name, equal or unknown sources, a candidate
            that is not one of the sources, an unknown case key, a case lacking a text for either source, or a
            case whose two texts are identical.
    """
    sources = (source_1, source_2)
    name = _check_set_options(session, study, name, sources, candidate_source, readers_per_pair)
    by_key = {case.case_key: case for case in study.cases}
    if case_keys is None:
        cases = list(study.cases)
    else:
        unknown = [key for key in case_keys if key not in by_key]
        if unknown:
            raise InvalidInput(f"unknown case key(s) {unknown} in study {study.name!r}")
        cases = [by_key[key] for key in case_keys]
    texts = [source_texts(session, study, source) for source in sources]
    for source, by_case in zip(sources, texts):
        lacking = [case.case_key for case in cases if case.id not in by_case]
        if lacking:
            raise InvalidInput(f"source {source!r} has no report for case(s) {lacking}")
    rows = [(case, texts[0][case.id], texts[1][case.id]) for case in cases]
    return _add_set(
        session, study, name, sources, candidate_source, study.seed if seed is None else seed, readers_per_pair, rows
    )


def _read_import(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise InvalidInput(f"{path.name}: unsupported import format {suffix!r}; use .csv or .jsonl")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        else:
            frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
    except ValueError as exc:  # not UTF-8, empty, malformed CSV or JSON (pandas raises ValueError subclasses)
        raise InvalidInput(f"{path.name}: cannot be read as UTF-8 {suffix.lstrip('.').upper()}: {exc}") from exc
    missing = [column for column in IMPORT_COLUMNS if column not in frame.columns]
    if missing:
        raise InvalidInput(f"{path.name}: missing column(s) {missing}; expected {list(IMPORT_COLUMNS)}")
    return frame


def _cell(value) -> str:
    """A text cell of an import row; missing values (JSON null, empty CSV cell) become ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def import_comparison_set(
    session: Session,
    study: ReaderStudy,
    name: str,
    path: str | Path,
    candidate_source: str,
    *,
    seed: int | None = None,
    readers_per_pair: int = 1,
) -> ComparisonSet:
    """Create a set from a CSV or JSONL file of pairs with columns :data:`IMPORT_COLUMNS`.

    Every row must name the same two sources (in either column order); the first row fixes them. Rows are
    stored in file order with source 1 = the first row's ``source_a_name``.

    Raises:
        InvalidInput: unsupported format, missing columns, an empty file, an unknown case key (with its line), a
            third source name (unknown source), a row pairing a source with itself, an empty text, identical
            texts, a case listed twice, or any problem of :func:`create_comparison_set`'s options.
    """
    path = Path(path)
    frame = _read_import(path)
    if frame.empty:
        raise InvalidInput(f"{path.name}: no rows")
    first = frame.iloc[0]
    sources = (_cell(first["source_a_name"]).strip(), _cell(first["source_b_name"]).strip())
    name = _check_set_options(session, study, name, sources, candidate_source, readers_per_pair)
    by_key = {case.case_key: case for case in study.cases}
    rows: list[tuple[Case, str, str]] = []
    seen: set[str] = set()
    # line numbers as a person sees them: CSV has a header line, JSONL does not
    first_line = 2 if path.suffix.lower() == ".csv" else 1
    for offset, row in enumerate(frame.itertuples(index=False)):
        line = first_line + offset
        case_key = _cell(row.case_key).strip()
        if case_key not in by_key:
            raise InvalidInput(f"{path.name} line {line}: unknown case key {case_key!r} in study {study.name!r}")
        if case_key in seen:
            raise InvalidInput(f"{path.name} line {line}: case {case_key!r} is listed twice")
        seen.add(case_key)
        row_sources = (_cell(row.source_a_name).strip(), _cell(row.source_b_name).strip())
        unknown = [source for source in row_sources if source not in sources]
        if unknown:
            raise InvalidInput(
                f"{path.name} line {line}: unknown source {unknown[0]!r}; this set compares {sources[0]!r} "
                f"and {sources[1]!r}"
            )
        if row_sources[0] == row_sources[1]:
            raise InvalidInput(f"{path.name} line {line}: both reports come from source {row_sources[0]!r}")
        texts = {row_sources[0]: _cell(row.text_a), row_sources[1]: _cell(row.text_b)}
        if not all(text.strip() for text in texts.values()):
            raise InvalidInput(f"{path.name} line {line}: a report text is empty")
        rows.append((by_key[case_key], texts[sources[0]], texts[sources[1]]))
    return _add_set(
        session, study, name, sources, candidate_source, study.seed if seed is None else seed, readers_per_pair, rows
    )


def assign_readers(
    session: Session,
    comparison_set: ComparisonSet,
    readers: list[User] | None = None,
    readers_per_pair: int | None = None,
) -> list[ComparisonAssignment]:
    """Assign each pair to ``readers_per_pair`` readers and draw each reader's order and A/B sides from the seed.

    Pairs go to the readers with the fewest pairs so far (ties broken by the seeded generator), so loads differ by
    at most one. Each reader's pairs are shuffled into positions, and exactly ``ceil(k/2)`` or ``floor(k/2)`` of
    the reader's ``k`` pairs show source 1 as Report A, in shuffled order. The same seed, pairs and readers always
    give the same design (``random.Random(comparison_set.seed)``).

    Args:
        readers: default every reader enrolled in the set's study, in user id order.
        readers_per_pair: default the set's; when given it is recorded on the set. Use ``len(readers)`` for "all".

    Raises:
        InvalidInput: the set already has assignments, no readers, a coordinator account, a user not enrolled in
            the study, or ``readers_per_pair`` outside 1..number of readers.
    """
    if session.scalar(
        select(ComparisonAssignment.id).where(ComparisonAssignment.set_id == comparison_set.id).limit(1)
    ) is not None:
        raise InvalidInput(f"comparison set {comparison_set.name!r} already has reader assignments")
    enrolled = list(
        session.scalars(
            select(User)
            .join(StudyReader, StudyReader.user_id == User.id)
            .where(StudyReader.study_id == comparison_set.study_id)
            .order_by(User.id)
        )
    )
    if readers is None:
        readers = enrolled
    enrolled_ids = {user.id for user in enrolled}
    for user in readers:
        if user.role != ROLE_READER:
            raise InvalidInput(f"{user.username!r} is a {user.role} account, not a reader")
        if user.id not in enrolled_ids:
            raise InvalidInput(f"{user.username!r} is not a reader of this study")
    if not readers:
        raise InvalidInput("no readers to assign; enroll readers in the study first")
    n = comparison_set.readers_per_pair if readers_per_pair is None else readers_per_pair
    if not 1 <= n <= len(readers):
        raise InvalidInput(f"readers_per_pair must be between 1 and {len(readers)} (the number of readers), got {n}")
    comparison_set.readers_per_pair = n

    rng = random.Random(comparison_set.seed)
    pairs = list(comparison_set.pairs)
    rng.shuffle(pairs)
    load = {user.id: 0 for user in readers}
    per_reader: dict[int, list[ComparisonPair]] = {user.id: [] for user in readers}
    for pair in pairs:
        tie_break = {user.id: rng.random() for user in readers}
        chosen = sorted(readers, key=lambda user: (load[user.id], tie_break[user.id]))[:n]
        for user in chosen:
            load[user.id] += 1
            per_reader[user.id].append(pair)
    assignments = []
    for user in readers:
        own = per_reader[user.id]
        rng.shuffle(own)
        a_sources = ([1, 2] * math.ceil(len(own) / 2))[: len(own)]
        rng.shuffle(a_sources)
        for position, (pair, a_source) in enumerate(zip(own, a_sources)):
            assignments.append(
                ComparisonAssignment(
                    set_id=comparison_set.id, pair_id=pair.id, reader_id=user.id, position=position, a_source=a_source
                )
            )
    session.add_all(assignments)
    session.flush()
    return assignments


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


def side_texts(assignment: ComparisonAssignment) -> tuple[str, str]:
    """(text of Report A, text of Report B) for this reader x pair, from the stored side order."""
    pair = assignment.pair
    return (pair.text_1, pair.text_2) if assignment.a_source == 1 else (pair.text_2, pair.text_1)


def side_sources(assignment: ComparisonAssignment) -> tuple[str, str]:
    """(source of Report A, source of Report B) for this reader x pair (unblinded; coordinator use only)."""
    pair = assignment.pair
    return (
        (pair.source_1_name, pair.source_2_name) if assignment.a_source == 1
        else (pair.source_2_name, pair.source_1_name)
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
    session.add(
        AuditEvent(
            kind=kind, user_id=reader.id, study_id=assignment.pair.comparison_set.study_id,
            detail={"comparison_set_id": assignment.set_id, "pair_id": assignment.pair_id, **detail},
        )
    )


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
    session.add(
        AuditEvent(
            kind="comparison_submitted", user_id=reader.id, study_id=comparison_set.study_id,
            detail={"comparison_set_id": set_id},
        )
    )
    session.flush()
    return submission


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
        per_pair: one row per pair: case, label, sources, judgement counts, comment count.
        per_reader: one row per reader: assigned, judged, A / B / equivalent counts, share_a, candidate
            equivalent-or-better share, submitted.
        preference: index ``overall``, ``normal``, ``abnormal``; columns n, better, equivalent, worse,
            equivalent_or_better (share of judgements with the candidate equivalent or better), ci_low, ci_high
            (95% percentile bootstrap, paper section 4.6), better_share.
        position_bias: see :class:`PositionBias`.
    """

    candidate_source: str
    judgements: pd.DataFrame
    per_pair: pd.DataFrame
    per_reader: pd.DataFrame
    preference: pd.DataFrame
    position_bias: PositionBias


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
    """Write :func:`comparison_table` to ``path`` as UTF-8 CSV and return it.

    Raises:
        PermissionDenied, NotFound: as for :func:`comparison_table`.
    """
    frame = comparison_table(session, coordinator, set_id)
    frame.to_csv(path, index=False)
    return frame


def bootstrap_share_ci(
    values: np.ndarray, n_resamples: int = 1000, seed: int = 0, confidence_level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of 0/1 ``values`` (paper section 4.6: 1,000 resamples, 2.5/97.5 pct).

    Args:
        values: shape (N,), 1.0 where the outcome holds, else 0.0; resampled with replacement at size N.

    Returns:
        (low, high); (NaN, NaN) when N < 2.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return math.nan, math.nan
    result = stats.bootstrap(
        (values,), np.mean, n_resamples=n_resamples, method="percentile", confidence_level=confidence_level,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _preference_row(outcomes: pd.Series, n_resamples: int, seed: int) -> dict:
    n = int(outcomes.size)
    counts = outcomes.value_counts()
    better, equivalent = int(counts.get(OUTCOME_BETTER, 0)), int(counts.get(OUTCOME_EQUIVALENT, 0))
    good = (outcomes != OUTCOME_WORSE).to_numpy(dtype=float)
    low, high = bootstrap_share_ci(good, n_resamples=n_resamples, seed=seed)
    return {
        "n": n,
        "better": better,
        "equivalent": equivalent,
        "worse": n - better - equivalent,
        "equivalent_or_better": good.mean() if n else math.nan,
        "ci_low": low,
        "ci_high": high,
        "better_share": better / n if n else math.nan,
    }


def comparison_results(
    session: Session, coordinator: User, set_id: int, *, n_resamples: int = 1000, seed: int | None = None
) -> ComparisonResults:
    """Unblinded results: tables, preference rates with bootstrap CIs, and the position-bias check.

    Preference rates are over judgements (reader x pair) of the set's ``candidate_source``: overall and by case
    label (``normal`` / ``abnormal``), with 95% percentile bootstrap CIs resampling judgements (paper 4.6).

    Args:
        n_resamples: bootstrap resamples (the paper: 1,000).
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

    preference = pd.DataFrame.from_dict(
        {
            "overall": _preference_row(judgements["candidate_outcome"], n_resamples, seed),
            **{
                label: _preference_row(
                    judgements.loc[judgements["case_label"] == label, "candidate_outcome"], n_resamples, seed
                )
                for label in LABEL_GROUPS
            },
        },
        orient="index",
    )

    pairs = list(comparison_set.pairs)
    pair_rows = []
    for pair in pairs:
        own = judgements[judgements["pair_id"] == pair.id]
        pair_rows.append(
            {
                "pair_id": pair.id,
                "case_key": pair.case.case_key,
                "case_label": pair.case.label,
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
        own = judgements[judgements["reader"] == reader.username]
        choices = own["choice"].value_counts()
        n_a, n_b = int(choices.get(SIDE_A, 0)), int(choices.get(SIDE_B, 0))
        reader_rows.append(
            {
                "reader": reader.username,
                "n_assigned": n_assigned[reader.id],
                "n_judged": len(own),
                "n_a": n_a,
                "n_b": n_b,
                "n_equivalent": int(choices.get(CHOICE_EQUIVALENT, 0)),
                "share_a": n_a / (n_a + n_b) if n_a + n_b else math.nan,
                "equivalent_or_better": (own["candidate_outcome"] != OUTCOME_WORSE).mean() if len(own) else math.nan,
                "submitted": reader.id in submitted,
            }
        )
    per_reader = pd.DataFrame(reader_rows)

    choices = judgements["choice"].value_counts()
    n_a, n_b = int(choices.get(SIDE_A, 0)), int(choices.get(SIDE_B, 0))
    position_bias = PositionBias(
        n_a=n_a,
        n_b=n_b,
        n_equivalent=int(choices.get(CHOICE_EQUIVALENT, 0)),
        share_a=n_a / (n_a + n_b) if n_a + n_b else math.nan,
        p_value=float(stats.binomtest(n_a, n_a + n_b, 0.5).pvalue) if n_a + n_b else math.nan,
    )
    return ComparisonResults(
        comparison_set.candidate_source, judgements, per_pair, per_reader, preference, position_bias
    )
