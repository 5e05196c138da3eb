"""Clinical context of cases from a CSV/JSONL file: what the DICOM header rarely holds.

One row per case, keyed by ``case_key`` (as printed by the DICOM import); every other column is optional and
only the columns present are changed:

    indication, comparison        free text shown to readers on the reading screen
    label                         normal / abnormal (or empty): for the analysis and comparison results
    reference_report              the original report, a comparison source
    patient_age, patient_sex      override what the header said (e.g. 062Y, F)

Bad rows are reported with their line numbers; good rows are applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from studyapp.db.models import Case, ReaderStudy, Series
from studyapp.services import audit
from studyapp.services.reading import MAX_REPORT_CHARS
from studyapp.services.rowfiles import read_rows, unknown_key_message

CONTEXT_COLUMNS = ("indication", "comparison", "label", "reference_report", "patient_age", "patient_sex")
LABELS = ("normal", "abnormal")


@dataclass
class CaseInfoResult:
    """Outcome of :func:`import_case_info`.

    Attributes:
        updated: cases changed (or, with ``dry_run``, that would change).
        unchanged: rows that change nothing.
        overwritten: cases whose stored (non-empty) values the import replaces or clears; setting an empty field
            is not overwriting.
        overwritten_fields: ``overwritten`` per column, e.g. ``{"indication": 2, "label": 1}``.
        errors: ``(line, message)`` per refused row.
    """

    updated: int = 0
    unchanged: int = 0
    overwritten: int = 0
    overwritten_fields: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)

    def overwriting(self) -> str:
        """What a preview (``dry_run=True``) would overwrite, for the coordinator's confirmation question, e.g.
        ``"the stored values of 2 case(s) (indication 2, label 1)"``."""
        fields = ", ".join(f"{column} {n}" for column, n in sorted(self.overwritten_fields.items()))
        return f"the stored values of {self.overwritten} case(s)" + (f" ({fields})" if fields else "")


def _values(row: dict) -> dict[str, str | None] | str:
    values = {}
    for column in CONTEXT_COLUMNS:
        if column not in row:
            continue
        value = row[column]
        if value is not None and not isinstance(value, str):
            return f"{column} must be text"
        value = (value or "").strip() or None
        if value is not None and len(value) > MAX_REPORT_CHARS:
            return f"{column} is longer than {MAX_REPORT_CHARS:,} characters"
        if column == "label" and value is not None:
            value = value.lower()
            if value not in LABELS:
                return f"label {row[column]!r} is not one of {', '.join(LABELS)} (or empty)"
        values[column] = value
    return values


def import_case_info(session: Session, study: ReaderStudy, path: str | Path, dry_run: bool = False
                     ) -> CaseInfoResult:
    """Set the clinical context of ``study``'s cases from a ``.csv`` or ``.jsonl`` file. Does not commit.

    Args:
        dry_run: change nothing (no write at all), only count: what the import would do, so that the coordinator
            can be asked before stored values are overwritten (:meth:`CaseInfoResult.overwriting`).

    Raises:
        RowFileError: the file cannot be read at all (see :func:`studyapp.services.rowfiles.read_rows`).
    """
    result = CaseInfoResult()
    cases = {c.case_key: c for c in session.scalars(select(Case).where(Case.study_id == study.id))}
    seen: dict[str, int] = {}
    for line, row in read_rows(path, ("case_key",), "case information", result.errors):
        key = row.get("case_key")
        case = cases.get(key.strip()) if isinstance(key, str) else None
        if case is None:
            result.errors.append((line, unknown_key_message(key, list(cases))))
            continue
        if case.case_key in seen:
            result.errors.append((line, f"case_key {case.case_key!r} already on line {seen[case.case_key]}"))
            continue
        seen[case.case_key] = line
        values = _values(row)
        if isinstance(values, str):
            result.errors.append((line, values))
            continue
        changed = {k: v for k, v in values.items() if getattr(case, k) != v}
        overwritten = [column for column in changed if getattr(case, column) not in (None, "")]
        for column in overwritten:
            result.overwritten_fields[column] = result.overwritten_fields.get(column, 0) + 1
        result.overwritten += bool(overwritten)
        if changed:
            result.updated += 1
        else:
            result.unchanged += 1
        if not dry_run:
            for column, value in changed.items():
                setattr(case, column, value)
    result.errors.sort()
    if dry_run:
        return result
    session.flush()
    audit.record(session, "case_info_imported", study_id=study.id, file=Path(path).name, updated=result.updated,
                 refused_rows=len(result.errors))
    return result


def case_choices(session: Session, study: ReaderStudy) -> list[tuple[str, str]]:
    """The study's cases as ``(label, case_key)`` pairs in case order, for a coordinator's searchable case picker.

    The label holds what a coordinator searches by: modalities and body parts (Body Part Examined, as readers see
    them: :func:`studyapp.services.reading.case_label`), study description, study date, normal/abnormal label,
    "practice" for practice cases, and the case key, e.g.
    ``"CR chest · CHEST PA · 2024-01-02 · abnormal · practice · 1.2.840...9"``. Two queries, whatever the study's
    size.
    """
    modalities: dict[int, set[str]] = {}
    body_parts: dict[int, set[str]] = {}
    for case_id, modality, body_part in session.execute(
            select(Series.case_id, Series.modality, Series.body_part).join(Case).where(Case.study_id == study.id)):
        modalities.setdefault(case_id, set()).add(modality or "?")
        if body_part:
            body_parts.setdefault(case_id, set()).add(body_part.lower())
    choices = []
    for case in session.scalars(select(Case).where(Case.study_id == study.id).order_by(Case.id)):
        date = case.study_date or ""
        kind = "/".join(sorted(modalities.get(case.id, {"?"}))) + " " + "/".join(sorted(body_parts.get(case.id, ())))
        parts = [kind.strip(), case.study_description or "",
                 f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 else date, case.label or "",
                 "practice" if case.is_practice else "", case.case_key]
        choices.append((" · ".join(part for part in parts if part), case.case_key))
    return choices


def describe_cases(session: Session, case_ids: list[int]) -> list[str]:
    """One line per case for coordinators: ``case_key | modalities | number of images | StudyInstanceUID``."""
    lines = []
    for case in (session.get(Case, case_id) for case_id in case_ids):
        modalities = "/".join(sorted({s.modality or "?" for s in case.series}))
        images = sum(len(s.instances) for s in case.series)
        lines.append(f"{case.case_key} | {modalities} | {images} | {case.study_instance_uid}")
    return lines
