"""Balanced reader x case x arm design of a reader study and the Assignment rows it produces.

The paper's user study (medversa-paper.txt, sections 2.4 and 4.3): 10 readers each read 75 unique chest X-ray
studies, 25 under each of three starting conditions (arms: normal template, GPT-4o draft, model draft); a case is
read at most once per reader and under different arms by different readers.

The design rules, proven by ``tests/services/test_design.py``:

1. A reader reads a case at most once.
2. Every reader gets exactly ``cases_per_reader / k`` cases per arm (``k`` arms); ``cases_per_reader`` must be a
   multiple of ``k``.
3. Every case is read by ``floor(R * m / N)`` or ``ceil(R * m / N)`` readers (``R`` readers, ``m`` cases per
   reader, ``N`` cases) and, across those readers, under each arm ``floor(d / k)`` or ``ceil(d / k)`` times, ``d``
   being its number of reads (an equitable edge colouring of the reader-case graph, which always exists for
   bipartite graphs: de Werra, 1971). With 10 readers x 75 cases x 3 arms every case is read 3/3/4 times.
4. Each reader's worklist order is a shuffle seeded from the study seed and the reader index, so the same seed
   always gives the same design.
5. Practice cases (``Case.is_practice``, :mod:`studyapp.services.practice`) are outside the design: every reader
   reads all of them first (positions ``1..P``, in case order, the ``j``-th under arm ``(j + r) mod k`` so readers
   practise every starting condition) and the balanced design of rules 1-4 covers the other cases only.

Construction: the cases are put in a seeded random cycle and reader ``r`` reads the ``m`` consecutive cases
starting at ``r * m`` (cyclic blocks give rule 3's coverage); the ``j``-th case of a reader's block starts under arm
``(j + r) mod k`` (a cyclic Latin-square rotation, which meets rule 2 and, when every reader reads every case, rule 3);
remaining per-case imbalances are removed by swapping two arms along alternating reader-case paths, which keeps
every reader's counts unchanged. No maintained Python library for Latin squares / balanced designs was found
(study-notes.md, "Statistics").
"""

from __future__ import annotations

import random
import secrets
from collections import Counter, defaultdict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from studyapp.db.models import (
    Arm,
    Assignment,
    Case,
    Draft,
    ReaderStudy,
    Report,
    StudyReader,
    User,
)
from studyapp.services import audit
from studyapp.services.errors import StudyError


class DesignError(StudyError, ValueError):
    """A design that cannot be built or written (sizes that do not fit, readers' work in the way)."""


class DesignRow(NamedTuple):
    """One reading: reader ``reader_index`` (0-based) reads ``case`` under ``arm`` at worklist ``position``
    (1-based, the order the reader sees)."""

    reader_index: int
    case: Hashable
    arm: Hashable
    position: int


def balanced_design(
    n_readers: int,
    cases: Sequence[Hashable],
    arms: Sequence[Hashable],
    cases_per_reader: int | None = None,
    seed: int = 0,
) -> list[DesignRow]:
    """Assign cases and arms to readers under the module's design rules.

    Args:
        n_readers: number of readers ``R`` (>= 1).
        cases: the ``N`` distinct case identifiers (keys or database ids).
        arms: the ``k`` distinct arm identifiers (codes or database ids).
        cases_per_reader: ``m``, how many cases each reader reads; ``None`` means all ``N``. Must be a multiple of
            ``k`` and at most ``N``.
        seed: the recorded study seed; the same arguments and seed always give the same rows.

    Returns:
        ``R * m`` rows, grouped by reader in order of ``reader_index`` and, within a reader, by ``position``
        ``1..m``.

    Raises:
        DesignError: no readers, cases or arms; duplicate cases or arms; ``cases_per_reader`` outside ``1..N`` or
            not a multiple of the number of arms.
    """
    n_cases, k = len(cases), len(arms)
    m = n_cases if cases_per_reader is None else cases_per_reader
    if n_readers < 1 or n_cases < 1 or k < 1:
        raise DesignError(
            f"a design needs at least one reader, case and arm (got {n_readers} readers, {n_cases} cases, {k} arms)"
        )
    if len(set(cases)) != n_cases or len(set(arms)) != k:
        raise DesignError("cases and arms must be distinct")
    if not 1 <= m <= n_cases:
        raise DesignError(f"cases_per_reader={m} must be between 1 and the number of cases ({n_cases})")
    if m % k:
        fitting = [str(c) for c in (m - m % k, m - m % k + k) if 1 <= c <= n_cases]
        raise DesignError(
            f"cases_per_reader={m} is not a multiple of the {k} arms, so readers cannot get equal counts per arm; "
            + (f"use {' or '.join(fitting)}" if fitting else
               f"no count fits: a design needs at least {k} cases (one per arm), there are {n_cases}")
        )

    cycle = list(range(n_cases))
    random.Random(f"{seed}:cases").shuffle(cycle)
    # colour[r][c] = arm index of reader r on case index c (only for the cases r reads)
    colour: list[dict[int, int]] = []
    for r in range(n_readers):
        block = [cycle[(r * m + j) % n_cases] for j in range(m)]
        colour.append({c: (j + r) % k for j, c in enumerate(block)})
    _equalise_case_arms(colour, n_cases, k)

    rows = []
    for r, reads in enumerate(colour):
        order = sorted(reads)
        random.Random(f"{seed}:reader:{r}").shuffle(order)
        rows.extend(DesignRow(r, cases[c], arms[reads[c]], pos) for pos, c in enumerate(order, start=1))
    return rows


def _equalise_case_arms(colour: list[dict[int, int]], n_cases: int, k: int) -> None:
    """Swap arms in place until every case's arm counts differ by at most 1; readers' counts never change.

    For a case whose most frequent arm ``a`` exceeds its rarest arm ``b`` by >= 2, a breadth-first search
    alternates case -(a)- reader -(b)- case ... until a case with more ``b`` than ``a`` reads; flipping a<->b
    along that path moves one read from ``a`` to ``b`` at both ends and changes nobody in between. Such a case is
    always reachable (each reader holds equally many ``a`` and ``b`` reads), and each flip lowers the sum of
    squared counts, so the loop ends.
    """
    readers_of: list[list[int]] = [[] for _ in range(n_cases)]
    for r, reads in enumerate(colour):
        for c in reads:
            readers_of[c].append(r)

    def counts(c: int) -> list[int]:
        tally = [0] * k
        for r in readers_of[c]:
            tally[colour[r][c]] += 1
        return tally

    changed = True
    while changed:
        changed = False
        for start in range(n_cases):
            tally = counts(start)
            a, b = max(range(k), key=tally.__getitem__), min(range(k), key=tally.__getitem__)
            if tally[a] - tally[b] < 2:
                continue
            # BFS over cases; parent[c] = (reader, previous case) of the a-edge / b-edge pair that reached c
            parent: dict[int, tuple[int, int]] = {}
            queue, end = deque([start]), None
            while queue and end is None:
                c = queue.popleft()
                for r in readers_of[c]:
                    if colour[r][c] != a:
                        continue
                    for c2, arm in colour[r].items():
                        if arm != b or c2 == start or c2 in parent:
                            continue
                        parent[c2] = (r, c)
                        t2 = counts(c2)
                        if t2[b] > t2[a]:
                            end = c2
                            break
                        queue.append(c2)
                    if end is not None:
                        break
            assert end is not None, "unreachable: an equitable colouring always exists for bipartite graphs"
            c2 = end
            while c2 != start:
                r, c = parent[c2]
                colour[r][c2], colour[r][c] = a, b
                c2 = c
            changed = True


@dataclass
class BalanceReport:
    """How balanced a written design is.

    Attributes:
        seed: the study seed the design was drawn from.
        arms: arm codes in column order.
        per_reader: reader name -> arm code -> number of cases.
        per_case: case key -> arm code -> number of readers (counted cases only).
        practice: practice case keys, read first by every reader and not part of the balance.
    """

    seed: int
    arms: list[str]
    per_reader: dict[str, dict[str, int]]
    per_case: dict[str, dict[str, int]]
    practice: list[str] = field(default_factory=list)

    @classmethod
    def from_rows(
        cls, rows: Sequence[tuple[str, str, str]], arms: Sequence[str], seed: int, cases: Sequence[str] = ()
    ) -> BalanceReport:
        """Tally ``(reader name, case key, arm code)`` triples; every arm appears in every count (0 if unused), and
        so does every case in ``cases``, read or not."""
        per_reader: dict[str, Counter[str]] = defaultdict(Counter)
        per_case: dict[str, Counter[str]] = defaultdict(Counter, {c: Counter() for c in cases})
        for reader, case, arm in rows:
            per_reader[reader][arm] += 1
            per_case[case][arm] += 1
        return cls(
            seed=seed,
            arms=list(arms),
            per_reader={r: {a: n[a] for a in arms} for r, n in per_reader.items()},
            per_case={c: {a: n[a] for a in arms} for c, n in per_case.items()},
        )

    @property
    def reader_imbalance(self) -> int:
        """Largest difference between two arms' counts of one reader (0 when every reader is exactly balanced)."""
        return max((max(n.values()) - min(n.values()) for n in self.per_reader.values()), default=0)

    @property
    def case_imbalance(self) -> int:
        """Largest difference between two arms' counts of one case (1 for 10 readers and 3 arms)."""
        return max((max(n.values()) - min(n.values()) for n in self.per_case.values()), default=0)

    @property
    def max_imbalance(self) -> int:
        """The larger of :attr:`reader_imbalance` and :attr:`case_imbalance`."""
        return max(self.reader_imbalance, self.case_imbalance)

    def format(self) -> str:
        """A plain-text report: one table of readers x arms, one of cases x arms, then the imbalances."""

        def table(title: str, counts: dict[str, dict[str, int]]) -> list[str]:
            width = max([len(title), *map(len, counts)])
            cols = [max(len(a), 5) for a in self.arms]
            head = "  ".join([title.ljust(width), *(a.rjust(w) for a, w in zip(self.arms, cols)), "total".rjust(5)])
            lines = [head, "-" * len(head)]
            for name, n in counts.items():
                cells = [str(n[a]).rjust(w) for a, w in zip(self.arms, cols)]
                lines.append("  ".join([name.ljust(width), *cells, str(sum(n.values())).rjust(5)]))
            return lines

        return "\n".join(
            [
                f"Balance report (seed {self.seed}): {len(self.per_reader)} readers, {len(self.per_case)} cases, "
                f"{len(self.arms)} arms",
                "",
                *table("reader", self.per_reader),
                "",
                *table("case", self.per_case),
                "",
                f"max arm imbalance per reader: {self.reader_imbalance}",
                f"max arm imbalance per case:   {self.case_imbalance}",
                f"practice cases (read first by every reader, not counted): {len(self.practice)}"
                + (f" ({', '.join(self.practice)})" if self.practice else ""),
            ]
        )


class GeneratedAssignment(NamedTuple):
    """How much of a study's generated design exists: its Assignment rows and the readers they belong to."""

    assignments: int
    readers: int


def assignment_counts(session: Session, study: ReaderStudy) -> GeneratedAssignment:
    """The study's Assignment rows and distinct readers: what re-generating the design or changing the practice
    cases would remove (shown to the coordinator before asking to confirm)."""
    assignments, readers = session.execute(
        select(func.count(Assignment.id), func.count(func.distinct(Assignment.reader_id)))
        .where(Assignment.study_id == study.id)).one()
    return GeneratedAssignment(int(assignments), int(readers))


def generate_assignments(
    session: Session, study: ReaderStudy, seed: int | None = None, cases_per_reader: int | None = None
) -> BalanceReport:
    """Write the study's Assignment rows from :func:`balanced_design` and record the seed on the study.

    Readers (``StudyReader``, ordered by user id), cases and arms (ordered by id) are read from the database;
    practice cases come first in every worklist and stay out of the balance (module docstring, rule 5).
    Assignments left from an earlier design are replaced when no reader has opened any of them. Does not commit.

    Args:
        session: the caller's session (one transaction per user action).
        study: the reader study.
        seed: design seed; ``None`` draws a new one. Stored in ``study.seed``.
        cases_per_reader: counted cases per reader (practice cases come on top); ``None`` means every reader
            reads every counted case.

    Returns:
        The balance of the written design, readers named by username and cases by case key.

    Raises:
        DesignError: existing assignments already have reports (the readers' work is never deleted), an assigned
            case x arm has no draft, or the sizes do not fit (see :func:`balanced_design`).
    """
    opened = session.scalar(
        select(func.count(Report.id)).join(Assignment).where(Assignment.study_id == study.id)
    )
    if opened:
        raise DesignError(
            f"study {study.name!r} already has {opened} opened report(s); its assignments cannot be regenerated"
        )
    memberships = session.scalars(
        select(StudyReader).where(StudyReader.study_id == study.id).order_by(StudyReader.user_id)
    ).all()
    readers = [m.user for m in memberships]
    all_cases = session.scalars(select(Case).where(Case.study_id == study.id).order_by(Case.id)).all()
    cases = [c for c in all_cases if not c.is_practice]
    practice = [c for c in all_cases if c.is_practice]
    arms = session.scalars(select(Arm).where(Arm.study_id == study.id).order_by(Arm.id)).all()
    if not readers or not cases or not arms:
        raise DesignError(
            f"study {study.name!r} needs readers, cases and arms before assignments "
            f"(has {len(readers)} readers, {len(cases)} cases, {len(arms)} arms"
            + (f"; {len(practice)} more cases are practice cases, which are not counted)" if practice else ")")
        )
    if len(cases) < len(arms):
        raise DesignError(
            f"study {study.name!r} has {len(cases)} counted case(s), fewer than its {len(arms)} arms: each reader "
            f"reads every arm, so the design needs at least {len(arms)} counted cases; import more cases"
            + (f" or make some of its {len(practice)} practice cases counted again (mark-practice --unmark)"
               if practice else "")
        )
    seed = secrets.randbelow(2**31) if seed is None else seed
    counted = balanced_design(len(readers), [c.id for c in cases], [a.id for a in arms], cases_per_reader, seed)
    rows = [DesignRow(r, c.id, arms[(j + r) % len(arms)].id, j + 1)
            for r in range(len(readers)) for j, c in enumerate(practice)]
    rows += [row._replace(position=row.position + len(practice)) for row in counted]
    drafted = set(session.execute(select(Draft.case_id, Draft.arm_id).join(Case).where(Case.study_id == study.id)))
    missing = sorted({(row.case, row.arm) for row in rows} - drafted)
    if missing:
        case_keys, arm_codes = {c.id: c.case_key for c in all_cases}, {a.id: a.code for a in arms}
        shown = ", ".join(f"{case_keys[c]} x {arm_codes[a]}" for c, a in missing[:5])
        raise DesignError(
            f"{len(missing)} assigned case x arm pair(s) have no draft (e.g. {shown}); import drafts (and set the "
            "normal template) before generating assignments"
        )

    session.execute(delete(Assignment).where(Assignment.study_id == study.id))
    session.flush()
    study.seed = seed
    session.add_all(
        Assignment(study_id=study.id, reader_id=readers[row.reader_index].id, case_id=row.case, arm_id=row.arm,
                   position=row.position)
        for row in rows
    )
    session.flush()

    audit.record(session, "assignments_generated", study_id=study.id, seed=seed, readers=len(readers),
                 cases=len(cases), practice_cases=len(practice), assignments=len(rows))
    case_key = {c.id: c.case_key for c in cases}
    arm_code = {a.id: a.code for a in arms}
    report = BalanceReport.from_rows(
        [(readers[row.reader_index].username, case_key[row.case], arm_code[row.arm]) for row in counted],
        [a.code for a in arms],
        seed,
        [c.case_key for c in cases],
    )
    report.practice = [c.case_key for c in practice]
    return report


def written_balance(session: Session, study: ReaderStudy) -> BalanceReport:
    """The balance of the design written for ``study`` (its Assignment rows as they are now), readers named by
    username and cases by case key, every counted case listed, practice cases apart; the seed is the study's."""
    rows = session.execute(
        select(User.username, Case.case_key, Case.is_practice, Arm.code)
        .select_from(Assignment)
        .join(User, User.id == Assignment.reader_id)
        .join(Case, Case.id == Assignment.case_id)
        .join(Arm, Arm.id == Assignment.arm_id)
        .where(Assignment.study_id == study.id)
        .order_by(Assignment.reader_id, Assignment.position)
    ).all()
    cases = session.scalars(select(Case).where(Case.study_id == study.id).order_by(Case.id)).all()
    arms = session.scalars(select(Arm.code).where(Arm.study_id == study.id).order_by(Arm.id)).all()
    report = BalanceReport.from_rows([(reader, case, arm) for reader, case, practice, arm in rows if not practice],
                                     arms, study.seed, [c.case_key for c in cases if not c.is_practice])
    report.practice = [c.case_key for c in cases if c.is_practice]
    return report
