"""Blinded A/B report comparison (paper section 2.3, Fig. 4; section 4.3 "Radiologist evaluation"; CIs as in 4.6).

A coordinator builds a :class:`~studyapp.db.comparisons.ComparisonSet` from a study's cases and two report sources,
assigns readers (each pair judged by ``readers_per_pair`` readers), and reads unblinded results
(:mod:`studyapp.services.comparison_results`). Readers see only :class:`~studyapp.services.judging.BlindedPair`
views (:mod:`studyapp.services.judging`): pair id and position, case id, clinical context, Report A and B -- never a
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
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyapp.db.comparisons import (
    ComparisonAssignment,
    ComparisonPair,
    ComparisonSet,
)
from studyapp.db.models import (
    ROLE_COORDINATOR,
    ROLE_READER,
    STATUS_SUBMITTED,
    Arm,
    Assignment,
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


def available_sources(session: Session, study: ReaderStudy) -> dict[str, int]:
    """The report sources of ``study`` that have at least one text, for choosing a set's two sources.

    Returns:
        source spec (``reference``, ``draft:<arm code>``, ``final:<arm code>``, in that order and in arm order) ->
        number of cases with a text from it.
    """
    specs = [SOURCE_REFERENCE] + [f"{kind}:{arm.code}" for kind in ("draft", "final")
                                  for arm in sorted(study.arms, key=lambda a: a.id)]
    counts = {spec: len(source_texts(session, study, spec)) for spec in specs}
    return {spec: n for spec, n in counts.items() if n}


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
    include_practice: bool = False,
) -> ComparisonSet:
    """Create a set pairing two database report sources for each case (paper section 2.3: human vs AI report).

    Args:
        source_1, source_2: source specs (see :func:`source_texts`), e.g. ``"reference"`` and ``"draft:model"``.
        candidate_source: the source under evaluation (the AI report); results give its equivalent-or-better share.
        seed: seed of the side randomisation, recorded on the set; default the study's seed.
        readers_per_pair: how many readers judge each pair (used by :func:`assign_readers`).
        case_keys: the cases to include, in this order; default every case of the study in id order.
        include_practice: also pair the study's practice cases (reads that never count); by default they are left
            out of the default case list and refused when named in ``case_keys``.

    Raises:
        InvalidInput: empty/duplicate name, a name containing a source name, equal or unknown sources, a candidate
            that is not one of the sources, an unknown case key, a case lacking a text for either source, or a
            case whose two texts are identical, or a named practice case without ``include_practice``.
    """
    sources = (source_1, source_2)
    name = _check_set_options(session, study, name, sources, candidate_source, readers_per_pair)
    by_key = {case.case_key: case for case in study.cases}
    if case_keys is None:
        cases = [case for case in study.cases if include_practice or not case.is_practice]
    else:
        unknown = [key for key in case_keys if key not in by_key]
        if unknown:
            raise InvalidInput(f"unknown case key(s) {unknown} in study {study.name!r}")
        cases = [by_key[key] for key in case_keys]
        practice = [case.case_key for case in cases if case.is_practice]
        if practice and not include_practice:
            raise InvalidInput(f"case(s) {practice} are practice cases, whose reads never count; leave them out or "
                               "include practice cases explicitly")
    if not cases:
        raise InvalidInput(f"study {study.name!r} has no case to compare (practice cases are left out unless "
                           "included)")
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
