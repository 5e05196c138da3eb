"""Submitted final reports as DICOM Structured Reports (highdicom Enhanced SR, PS3.3 A.35.2), written to a folder
and, for cases retrieved from a PACS, sent back there with STOW-RS (``studyapp.services.pacs.store``).

Each SR follows TID 2000 Basic Diagnostic Imaging Report: the root container (LN 18748-4 Diagnostic Imaging
Report), the language (English), the reader as person observer (DCM 121006), a Findings section (DCM 121070) with
one Finding text item (DCM 121071) and an Impressions section (DCM 121072) with one Impression text item
(DCM 121073), parsed with :func:`studyapp.report_sections.split_sections` ("FINDINGS: ... IMPRESSION: ...", on one
line or several). A report whose impression would be empty is not exported unless the coordinator allows it (the
SR then has no Impressions section, never a placeholder); a missing findings section and report text outside both
sections (an indication, text before the first heading) are listed as warnings per report. It is part of the source study (its Study Instance
UID, patient and study attributes) and lists the source instances as evidence. Blinding: the arm and the draft's
source are never written, unless a coordinator asks for an unblinded research export (one Comment item,
DCM 121106). UIDs are derived from the report and its text, so exporting again gives the same SR.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyapp.db.models import STATUS_SUBMITTED, Assignment, Case, ReaderStudy, Report
from studyapp.report_sections import ReportSections, split_sections
from studyapp.services import audit
from studyapp.services.errors import InvalidInput

SR_SERIES_NUMBER = 990
_NOT_IN_UT = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f\ud800-\udfff]")  # PS3.5 6.1.3: UT control chars


@dataclass(frozen=True)
class WrittenSR:
    """One SR file: the case (its key, StudyInstanceUID and PACS origin), the reader, the file and its UID."""

    case_key: str
    study_instance_uid: str
    pacs_url: str | None
    reader: str
    path: Path
    sop_instance_uid: str


@dataclass
class SRExportReport:
    """SRs written, the reports or cases that were not (each with its reason) and warnings about written SRs."""

    folder: Path
    written: list[WrittenSR] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Counts, then one line per file, per problem and per warning."""
        lines = [f"{len(self.written)} SR file(s) written to {self.folder}, {len(self.problems)} problem(s), "
                 f"{len(self.warnings)} warning(s)"]
        lines += [f"  {w.case_key} / {w.reader}: {w.path.name} (SOP Instance UID {w.sop_instance_uid})"
                  for w in self.written]
        lines += [f"  not exported: {problem}" for problem in self.problems]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def _evidence(case: Case) -> list[pydicom.Dataset]:
    """Headers of the case's source instances, with the UIDs the platform stored (derived UIDs for
    de-identified files that carry empty ones)."""
    headers = []
    for series in case.series:
        for instance in series.instances:
            ds = pydicom.dcmread(instance.file_path, stop_before_pixels=True)
            ds.StudyInstanceUID = case.study_instance_uid
            ds.SeriesInstanceUID = series.series_instance_uid
            ds.SOPInstanceUID = instance.sop_instance_uid
            ds.SOPClassUID = instance.sop_class_uid or ds.get("SOPClassUID")
            headers.append(ds)
    return headers


def _section(name, item_name, text: str) -> list[hd.sr.ContainerContentItem]:
    """The section container with its one text item, or nothing for an empty section (TID 2000 lets both
    sections be absent; an empty one is left out rather than filled with a placeholder)."""
    if not text:
        return []
    section = hd.sr.ContainerContentItem(name=name, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    section.ContentSequence = [hd.sr.TextContentItem(
        name=item_name, value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)]
    return [section]


def _where(report: Report) -> str:
    case, reader = report.assignment.case, report.assignment.reader
    return f"case {case.case_key!r} (StudyInstanceUID {case.study_instance_uid}), reader {reader.username!r}"


def _headings(sections: ReportSections) -> str:
    return ", ".join(sections.sections) if sections.has_headers else "none"


def section_warnings(report: Report, sections: ReportSections) -> list[str]:
    """What the coordinator should know about the SR of ``report`` whose final text parsed as ``sections``:
    an empty impression or findings section, text that is in no SR section (the preamble, other headings).

    Returns:
        One sentence per point, each naming the case and reader; [] when the SR holds the whole report.
    """
    where, warnings = _where(report), []
    if not sections.impression:
        warnings.append(f"{where}: the SR has no impression (headings found: {_headings(sections)})")
    if not sections.findings:
        warnings.append(f"{where}: the SR has no findings, only the impression (headings found: "
                        f"{_headings(sections)})")
    left_out = ([f"text before the first heading ({sections.preamble[:40]!r})"] if sections.preamble else []) + [
        f"the {name} section" for name, text in sections.sections.items()
        if text and name not in ("FINDINGS", "IMPRESSION")]
    if left_out:
        warnings.append(f"{where}: not in the SR (it holds FINDINGS and IMPRESSION only): {', '.join(left_out)}")
    return warnings


def build_sr(report: Report, *, unblinded: bool = False, allow_empty_impression: bool = False) -> hd.sr.EnhancedSR:
    """The Enhanced SR of one submitted report (see the module docstring for its content tree).

    Args:
        report: a report with status ``submitted`` and its final text.
        unblinded: add the arm and draft source as a Comment (research export only).
        allow_empty_impression: write an SR without an Impressions section when the final text has no (or an
            empty) IMPRESSION section instead of refusing.

    Returns:
        The SR dataset, Specific Character Set ISO_IR 192 (UTF-8).

    Raises:
        InvalidInput: the report is not submitted, its text holds a character a DICOM UT value may not hold, its
            impression would be empty (unless allowed), or a source file of the case cannot be read.
    """
    assignment = report.assignment
    case, reader = assignment.case, assignment.reader
    where = _where(report)
    if report.status != STATUS_SUBMITTED or report.final_text is None:
        raise InvalidInput(f"{where}: the report is not submitted yet")
    bad = _NOT_IN_UT.search(report.final_text)
    if bad:
        raise InvalidInput(f"{where}: the final report holds the character U+{ord(bad.group()):04X} at position "
                           f"{bad.start() + 1}, which a DICOM text value may not hold; correct the report")
    sections = split_sections(report.final_text)
    if not sections.impression and not allow_empty_impression:
        raise InvalidInput(
            f"{where}: the SR's impression would be empty (headings found: {_headings(sections)}); write the final "
            f"report as 'FINDINGS: ... IMPRESSION: ...', or export it without an impression (--allow-empty-impression)")
    try:
        evidence = _evidence(case)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise InvalidInput(f"{where}: a source DICOM file cannot be read: {exc}") from exc
    if not evidence:
        raise InvalidInput(f"{where}: the case has no images to reference")

    root = hd.sr.ContainerContentItem(name=codes.LN.DiagnosticImagingReport, template_id="2000")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            # one component (the family name) with a trailing caret, as PS3.5 6.2.1.2 asks for a single name
            name=(reader.display_name or reader.username).replace("^", " ") + "^", login_name=reader.username),
    )
    content = [
        *hd.sr.LanguageOfContentItemAndDescendants(hd.sr.CodedConcept("en-US", "RFC5646", "English (United States)")),
        *hd.sr.ObservationContext(observer_person_context=observer),
        *_section(codes.DCM.Findings, codes.DCM.Finding, sections.findings),
        *_section(codes.DCM.Impressions, codes.DCM.Impression, sections.impression),
    ]
    if unblinded:
        arm = assignment.arm
        source = next((d.source for d in case.drafts if d.arm_id == arm.id), "")
        content.append(hd.sr.TextContentItem(
            name=codes.DCM.Comment, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            value=f"Unblinded research export: reader-study arm {arm.code} ({arm.label}); draft source {source}"))
    root.ContentSequence = content

    identity = [case.study_instance_uid, str(report.id), report.final_text, str(unblinded)]
    with warnings.catch_warnings():
        # highdicom warns when the patient name has one component (de-identified sources hold e.g. a hash there);
        # the SR copies the source study's name as the PACS stores it, so there is nothing for a coordinator to do
        warnings.filterwarnings("ignore", message=r"The string .* is unlikely to represent the intended person name",
                                category=UserWarning)
        sr = hd.sr.EnhancedSR(
            evidence=evidence,
            content=root,
            series_instance_uid=generate_uid(entropy_srcs=["studyapp SR series", case.study_instance_uid,
                                                           str(case.study_id), str(unblinded)]),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=generate_uid(entropy_srcs=["studyapp SR", *identity]),
            instance_number=assignment.id,
            manufacturer="studyapp reader-study platform",
            is_complete=True,
            is_final=True,
            series_description="Reader-study final report" + (" (unblinded research export)" if unblinded else ""),
        )
    sr.SpecificCharacterSet = "ISO_IR 192"
    return sr


def _submitted_reports(session: Session, study: ReaderStudy, case_keys) -> tuple[list[Report], list[str]]:
    query = (select(Report).join(Assignment).join(Case).where(Assignment.study_id == study.id)
             .order_by(Case.id, Assignment.reader_id))
    reports = session.scalars(query).all()
    wanted = list(dict.fromkeys(case_keys or []))
    problems = []
    if wanted:
        known = set(session.scalars(select(Case.case_key).where(Case.study_id == study.id)))
        unknown = [key for key in wanted if key not in known]
        if unknown:
            raise InvalidInput(f"study {study.name!r} has no case {', '.join(map(repr, unknown))}")
        reports = [r for r in reports if r.assignment.case.case_key in wanted]
    submitted = [r for r in reports if r.status == STATUS_SUBMITTED and r.final_text is not None]
    practice = sorted({r.assignment.case.case_key for r in submitted if r.assignment.case.is_practice})
    problems += [f"practice case {key!r}: its reports are practice reads, never exported" for key in practice]
    submitted = [r for r in submitted if not r.assignment.case.is_practice]
    done = {r.assignment.case.case_key for r in submitted}
    cases = wanted or session.scalars(select(Case.case_key).where(Case.study_id == study.id).order_by(Case.id))
    for key in cases:
        if key not in done and key not in practice:
            open_reports = sum(1 for r in reports if r.assignment.case.case_key == key)
            problems.append(f"case {key!r} has no submitted report yet ({open_reports} in progress)")
    return submitted, problems


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "case"


def export_srs(session: Session, study: ReaderStudy, folder: str | Path, *, case_keys=None,
               unblinded: bool = False, allow_empty_impression: bool = False) -> SRExportReport:
    """Write one SR file per submitted report of ``study`` (or of the cases ``case_keys``) to ``folder``; reports of
    practice cases are practice reads and never leave the study (listed as not exported), so ``--send`` never stores
    them in a PACS.

    Files are named ``<case_key>_<reader>_SR.dcm``; a report whose SR cannot be built (an empty impression unless
    ``allow_empty_impression``) is listed with the reason and the others are written; what a written SR lacks is
    listed in ``warnings`` (:func:`section_warnings`). Cases without a submitted report are listed too. Nothing
    in the database changes except one audit event.

    Raises:
        InvalidInput: an unknown case key, or no submitted report at all to export.
        OSError: the folder cannot be created.
    """
    folder = Path(folder)
    submitted, problems = _submitted_reports(session, study, case_keys)
    report = SRExportReport(folder, problems=problems)
    if not submitted:
        scope = f"study {study.name!r}" + (f" ({'case' if len(case_keys) == 1 else 'cases'} "
                                           f"{', '.join(map(repr, case_keys))})" if case_keys else "")
        raise InvalidInput(f"{scope} has no submitted report to export as DICOM SR: " + "; ".join(problems))
    folder.mkdir(parents=True, exist_ok=True)
    for item in submitted:
        case, reader = item.assignment.case, item.assignment.reader
        try:
            sr = build_sr(item, unblinded=unblinded, allow_empty_impression=allow_empty_impression)
        except InvalidInput as exc:
            report.problems.append(str(exc))
            continue
        report.warnings += section_warnings(item, split_sections(item.final_text))
        path = folder / f"{_file_name(case.case_key)}_{_file_name(reader.username)}_SR.dcm"
        sr.save_as(path, enforce_file_format=True)
        report.written.append(WrittenSR(case.case_key, case.study_instance_uid, case.pacs_url, reader.username,
                                        path, sr.SOPInstanceUID))
    audit.record(session, "sr_exported", study_id=study.id, folder=str(folder), written=len(report.written),
                 problems=len(report.problems), warnings=len(report.warnings), unblinded=unblinded)
    return report
