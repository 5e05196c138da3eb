"""Starting drafts of a study: import from CSV or JSONL, and the study-level normal template.

A draft is the immutable starting text of one case under one arm, with its source (the model or person that wrote
it, e.g. ``gpt-4o-2024-08-06``); the paper's arms are a normal template, a GPT-4o draft and a MedVersa draft
(medversa-paper.txt, section 2.4). A file holds one draft per row (CSV, header row required) or per line (JSONL):

    case_key, arm, text, source   required
    is_sample                     optional: true/false, yes/no, 1/0 (empty = false); marks demo drafts
    findings                      optional: the draft's boxes and masks with their sentences
                                  (``studyapp.services.findings``; JSON text in CSV)

Each bad row is reported with its line number and skipped; good rows still import. Re-importing an identical row
changes nothing; a row that differs from a stored draft is a conflict unless ``replace=True`` and no reader has
opened a report on that case under that arm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studyapp.db.models import (
    ARM_TEMPLATE,
    Arm,
    Assignment,
    Case,
    Draft,
    DraftFinding,
    ReaderStudy,
    Report,
)
from studyapp.services import audit, findings
from studyapp.services.errors import InvalidInput
from studyapp.services.reading import MAX_REPORT_CHARS
from studyapp.services.rowfiles import RowFileError, read_rows, unknown_key_message

TEMPLATE_SOURCE = "normal template"
REQUIRED_COLUMNS = ("case_key", "arm", "text", "source")
_BOOLEANS = {"": False, "false": False, "no": False, "0": False, "true": True, "yes": True, "1": True}


#: Raised for a drafts file that cannot be read at all (see :func:`studyapp.services.rowfiles.read_rows`).
DraftFileError = RowFileError


@dataclass
class ImportResult:
    """Outcome of a drafts import.

    Attributes:
        imported: new drafts stored.
        unchanged: rows identical to a stored draft (re-import).
        replaced: stored drafts overwritten (only with ``replace=True``).
        replaced_per_arm: ``replaced`` per arm code.
        errors: ``(line number, reason)`` per rejected row, line 1 being the CSV header / first JSONL line.
    """

    imported: int = 0
    unchanged: int = 0
    replaced: int = 0
    replaced_per_arm: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)

    def replacing(self) -> str:
        """What a preview (``dry_run=True``) would overwrite, for the coordinator's confirmation question, e.g.
        ``"2 stored draft(s) (llm 1, model 1)"``."""
        arms = ", ".join(f"{code} {n}" for code, n in sorted(self.replaced_per_arm.items()))
        return f"{self.replaced} stored draft(s)" + (f" ({arms})" if arms else "")

    def _count_replaced(self, arm_code: str) -> None:
        self.replaced += 1
        self.replaced_per_arm[arm_code] = self.replaced_per_arm.get(arm_code, 0) + 1


def import_drafts(session: Session, study: ReaderStudy, path: str | Path, replace: bool = False,
                  dry_run: bool = False) -> ImportResult:
    """Import the drafts in a ``.csv`` or ``.jsonl`` file into ``study``. Does not commit.

    Args:
        session: the caller's session (one transaction per user action).
        study: the reader study whose cases and arms the rows name.
        path: a UTF-8 CSV file with a header row, or a JSON-lines file (``.jsonl`` / ``.ndjson``).
        replace: overwrite stored drafts that differ, unless a reader has opened a report on them.
        dry_run: change nothing (no write at all), only count: what the import would do, so that the coordinator
            can be asked before drafts are overwritten (:meth:`ImportResult.replacing`).

    Returns:
        Counts and row-level errors: unknown case_key, unknown arm, empty text or source, missing column,
        bad is_sample, malformed JSON line, duplicate row, conflict with a stored draft, draft already read.

    Raises:
        DraftFileError: the file is missing, not CSV/JSONL, not UTF-8 text, or a CSV without the required header.
    """
    result = ImportResult()
    rows = read_rows(path, REQUIRED_COLUMNS, "drafts", result.errors)
    cases = {c.case_key: c for c in session.scalars(select(Case).where(Case.study_id == study.id))}
    arms = {a.code: a for a in session.scalars(select(Arm).where(Arm.study_id == study.id))}
    arm_codes = {a.id: a.code for a in arms.values()}
    first_line: dict[tuple[int, int], int] = {}
    for line, row in rows:
        draft = _validate(row, cases, arms)
        if isinstance(draft, str):
            result.errors.append((line, draft))
            continue
        key = (draft.case_id, draft.arm_id)
        if key in first_line:
            where = f"case_key {row['case_key']!r}, arm {row['arm']!r}"
            result.errors.append((line, f"duplicate row: {where} already on line {first_line[key]}"))
            continue
        first_line[key] = line
        problem = _store(session, draft, arm_codes[draft.arm_id], replace, result, dry_run)
        if problem:
            result.errors.append((line, problem))
    result.errors.sort()
    if dry_run:
        return result
    session.flush()
    audit.record(session, "drafts_imported", study_id=study.id, file=Path(path).name, imported=result.imported,
                 unchanged=result.unchanged, replaced=result.replaced, refused_rows=len(result.errors))
    return result


def set_template(session: Session, study: ReaderStudy, text: str, dry_run: bool = False) -> ImportResult:
    """Store the study-level normal template and make it the ``template`` arm's draft of every case.

    Drafts are created for cases that have none and updated where the text changed, with source
    ``"normal template"``. Does not commit; with ``dry_run`` changes nothing and only counts (to ask the
    coordinator before template drafts are overwritten).

    Returns:
        ``imported`` = drafts created, ``replaced`` = drafts updated, ``unchanged`` = drafts already equal.

    Raises:
        InvalidInput: empty text, no ``template`` arm in the study, or a reader already opened a report on a
            template draft whose text would change (nothing is changed then).
    """
    text = text.strip()
    if not text:
        raise InvalidInput("the normal template is empty")
    arm = session.scalar(select(Arm).where(Arm.study_id == study.id, Arm.code == ARM_TEMPLATE))
    if arm is None:
        raise InvalidInput(f"study {study.name!r} has no arm {ARM_TEMPLATE!r}")
    stored = {d.case_id: d for d in session.scalars(select(Draft).where(Draft.arm_id == arm.id))}
    changing = [d.case_id for d in stored.values() if (d.text, d.source) != (text, TEMPLATE_SOURCE)]
    read = _reports_on(session, arm.id, changing)
    if read:
        raise InvalidInput(
            f"readers already opened {read} report(s) on the current template drafts; the template cannot change"
        )
    result = ImportResult()
    for case in session.scalars(select(Case).where(Case.study_id == study.id).order_by(Case.id)):
        draft = stored.get(case.id)
        if draft is None:
            if not dry_run:
                session.add(Draft(case_id=case.id, arm_id=arm.id, text=text, source=TEMPLATE_SOURCE))
            result.imported += 1
        elif case.id in changing:
            if not dry_run:
                draft.text, draft.source, draft.is_sample = text, TEMPLATE_SOURCE, False
            result._count_replaced(ARM_TEMPLATE)
        else:
            result.unchanged += 1
    if dry_run:
        return result
    study.template_text = text
    session.flush()
    audit.record(session, "template_set", study_id=study.id, imported=result.imported, replaced=result.replaced)
    return result


def add_template_drafts(session: Session, study: ReaderStudy) -> int:
    """Give each case of ``study`` without a ``template`` arm draft one holding the study's normal template (after
    an import added cases). Stored drafts never change: they may come from a drafts file or be read already.
    Nothing happens without a template or a ``template`` arm. Does not commit.

    Returns:
        The number of drafts created.
    """
    text = (study.template_text or "").strip()
    arm = session.scalar(select(Arm).where(Arm.study_id == study.id, Arm.code == ARM_TEMPLATE))
    if not text or arm is None:
        return 0
    drafted = set(session.scalars(select(Draft.case_id).where(Draft.arm_id == arm.id)))
    case_ids = session.scalars(select(Case.id).where(Case.study_id == study.id).order_by(Case.id))
    missing = [case_id for case_id in case_ids if case_id not in drafted]
    session.add_all(Draft(case_id=case_id, arm_id=arm.id, text=text, source=TEMPLATE_SOURCE) for case_id in missing)
    session.flush()
    if missing:
        audit.record(session, "template_drafts_added", study_id=study.id, created=len(missing))
    return len(missing)


def _validate(row: dict, cases: dict[str, Case], arms: dict[str, Arm]) -> Draft | str:
    """An unsaved Draft for a valid row, or the reason the row is rejected."""
    if "__extra__" in row:
        return f"{len(row['__extra__'])} more value(s) than header columns"
    missing = [c for c in REQUIRED_COLUMNS if row.get(c) is None]
    if missing:
        return f"missing column(s) {', '.join(missing)}"
    wrong = [c for c in REQUIRED_COLUMNS if not isinstance(row[c], str)]
    if wrong:
        return f"{', '.join(wrong)} must be text"
    case = cases.get(row["case_key"].strip())
    if case is None:
        return unknown_key_message(row["case_key"], list(cases))
    arm = arms.get(row["arm"].strip())
    if arm is None:
        return f"unknown arm {row['arm']!r}; the study's arms are {', '.join(sorted(arms))}"
    text, source = row["text"].strip(), row["source"].strip()
    if not text:
        return "empty text"
    if len(text) > MAX_REPORT_CHARS:
        return f"text is {len(text):,} characters long; the limit is {MAX_REPORT_CHARS:,}"
    if "\x00" in text:
        return "text contains a NUL character"
    if not source:
        return "empty source"
    is_sample = row.get("is_sample")
    if is_sample is None or isinstance(is_sample, bool):
        is_sample = bool(is_sample)
    elif isinstance(is_sample, str) and is_sample.strip().lower() in _BOOLEANS:
        is_sample = _BOOLEANS[is_sample.strip().lower()]
    else:
        return f"is_sample {is_sample!r} is not true/false"
    parsed = findings.parse_findings(row.get("findings"), case)
    if isinstance(parsed, str):
        return parsed
    return Draft(case_id=case.id, arm_id=arm.id, text=text, source=source, is_sample=is_sample, findings=parsed)


def _store(session: Session, draft: Draft, arm_code: str, replace: bool, result: ImportResult, dry_run: bool
           ) -> str | None:
    """Add ``draft`` or compare it with the stored one (only count with ``dry_run``); the reason it was not
    stored, if any."""
    stored = session.scalar(select(Draft).where(Draft.case_id == draft.case_id, Draft.arm_id == draft.arm_id))
    if stored is None:
        if not dry_run:
            session.add(draft)
            session.flush()
        result.imported += 1
        return None
    fields = ("text", "source", "is_sample")
    differ = [f for f in fields if getattr(stored, f) != getattr(draft, f)]
    new_findings = findings.as_rows(draft.findings) != findings.as_rows(stored.findings)
    if new_findings:
        differ.append("findings")
    if not differ:
        result.unchanged += 1
        return None
    if not replace:
        return (
            f"conflict: a stored draft for this case and arm has a different {', '.join(differ)}; drafts are "
            "immutable (re-import with replace: --replace on the command line, or the app's replace box)"
        )
    read = _reports_on(session, draft.arm_id, [draft.case_id])
    if read:
        return f"cannot replace: readers already opened {read} report(s) on this draft"
    result._count_replaced(arm_code)
    if dry_run:
        return None
    for f in fields:
        setattr(stored, f, getattr(draft, f))
    if new_findings:  # old rows deleted first (unique positions); copies, as moving rows would pull in the draft
        stored.findings.clear()
        session.flush()
        stored.findings = [DraftFinding(position=f.position, kind=f.kind, sentence=f.sentence, geometry=f.geometry)
                           for f in draft.findings]
        session.flush()
    return None


def _reports_on(session: Session, arm_id: int, case_ids: list[int]) -> int:
    """Number of reports readers opened on the drafts of ``case_ids`` under arm ``arm_id``."""
    if not case_ids:
        return 0
    return session.scalar(
        select(func.count(Report.id))
        .join(Assignment)
        .where(Assignment.arm_id == arm_id, Assignment.case_id.in_(case_ids))
    )
