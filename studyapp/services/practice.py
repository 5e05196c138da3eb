"""Practice cases: the cases every reader reads first, to learn the screen, and that never count.

The paper's readers first read 25 practice cases that did not count (medversa-paper.txt, section 4.3, "User
study"). A coordinator marks cases as practice (by case key, or from a CSV/JSONL list with a ``case_key`` column)
before generating the design: :func:`studyapp.services.design.generate_assignments` gives every reader all practice
cases at the top of the worklist and builds the balanced design from the other cases only. Practice reads are
stored like any read, flagged in the reads export (column ``practice``) and left out of every analysis figure
(:func:`analysis.skipped.usable_readings` lists each one it leaves out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from studyapp.db.models import Assignment, Case, ReaderStudy, Report
from studyapp.services import audit
from studyapp.services.errors import InvalidInput
from studyapp.services.rowfiles import read_rows, unknown_key_message


@dataclass
class PracticeResult:
    """Outcome of :func:`set_practice`.

    Attributes:
        changed: case keys whose practice flag changed.
        unchanged: case keys that already had the requested flag.
        practice: every practice case key of the study afterwards, in case order.
        removed_assignments: assignments deleted because the design no longer fits (none had been opened).
        errors: ``(line, message)`` for refused rows (line 0 for case keys given directly).
    """

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    practice: list[str] = field(default_factory=list)
    removed_assignments: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the coordinator (CLI and app)."""
        text = (f"practice cases: {len(self.practice)} ({', '.join(self.practice) or 'none'}); changed "
                f"{len(self.changed)}, unchanged {len(self.unchanged)}, errors {len(self.errors)}")
        if self.removed_assignments:
            text += (f". The {self.removed_assignments} assignments of the old design were removed (no reader had "
                     "opened a case): generate the assignments again")
        return text


def practice_case_keys(session: Session, study: ReaderStudy) -> list[str]:
    """The study's practice case keys in case order (``Case.id``)."""
    return list(session.scalars(
        select(Case.case_key).where(Case.study_id == study.id, Case.is_practice).order_by(Case.id)))


def set_practice(session: Session, study: ReaderStudy, case_keys: list[tuple[int, str]], practice: bool = True,
                 dry_run: bool = False) -> PracticeResult:
    """Mark (or, with ``practice=False``, unmark) cases of ``study`` as practice cases. Does not commit.

    Args:
        case_keys: ``(line, case_key)`` pairs; ``line`` only names the row in error messages (0: typed keys).
        practice: the flag to set.
        dry_run: change nothing (no write at all), only report what would change, ``removed_assignments``
            included, so that the coordinator can be asked before the generated assignment is removed.

    Returns:
        What changed; unknown case keys are listed in ``errors`` and the known ones are still applied.

    Raises:
        InvalidInput: a reader has already opened a case of the study (practice cases cannot change once reading
            started: the counted design would change under the readers), or no case key was given.
    """
    if not case_keys:
        raise InvalidInput("no case_key given: name the practice cases (or give a file with a case_key column)")
    opened = session.scalar(select(func.count(Report.id)).join(Assignment).where(Assignment.study_id == study.id))
    if opened:
        raise InvalidInput(f"study {study.name!r} already has {opened} opened report(s): practice cases cannot change "
                           "once reading started")
    result = PracticeResult()
    cases = {c.case_key: c for c in session.scalars(select(Case).where(Case.study_id == study.id))}
    for line, key in case_keys:
        case = cases.get(key.strip()) if isinstance(key, str) else None
        if case is None:
            result.errors.append((line, unknown_key_message(key, list(cases))))
        elif case.is_practice == practice:
            result.unchanged.append(case.case_key)
        else:
            result.changed.append(case.case_key)
            if not dry_run:
                case.is_practice = practice
    if dry_run:
        if result.changed:
            result.removed_assignments = session.scalar(
                select(func.count(Assignment.id)).where(Assignment.study_id == study.id))
        marked = {key for key, case in cases.items() if case.is_practice} ^ set(result.changed)
        result.practice = sorted(marked, key=lambda key: cases[key].id)
        return result
    if result.changed:
        result.removed_assignments = session.execute(
            delete(Assignment).where(Assignment.study_id == study.id)).rowcount
    session.flush()
    result.practice = practice_case_keys(session, study)
    audit.record(session, "practice_cases_set", study_id=study.id, practice=practice, changed=result.changed,
                 removed_assignments=result.removed_assignments, refused=len(result.errors))
    return result


def import_practice_list(session: Session, study: ReaderStudy, path: str | Path, dry_run: bool = False
                         ) -> PracticeResult:
    """Mark the cases listed in a ``.csv`` (header with ``case_key``) or ``.jsonl`` file as practice cases
    (``dry_run``: see :func:`set_practice`).

    Raises:
        RowFileError: the file cannot be read at all (see :func:`studyapp.services.rowfiles.read_rows`).
        InvalidInput: see :func:`set_practice`; also a file without any row.
    """
    errors: list[tuple[int, str]] = []
    rows = read_rows(path, ("case_key",), "practice cases", errors)
    keys = [(line, row.get("case_key")) for line, row in rows]
    if not keys and errors:
        raise InvalidInput(f"{Path(path).name}: " + "; ".join(f"line {line}: {message}" for line, message in errors))
    result = set_practice(session, study, keys, dry_run=dry_run)
    result.errors = sorted(errors + result.errors)
    return result
