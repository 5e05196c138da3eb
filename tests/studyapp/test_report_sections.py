"""The one report-section parser (studyapp.report_sections) on real IU report texts in the layouts readers and
drafts write them, and on hand-written variants."""

import tarfile
import xml.etree.ElementTree as ET

import pytest

from studyapp.report_sections import split_sections


@pytest.fixture(scope="module")
def iu_reports(shared_data) -> list[dict[str, str]]:
    """Real IU reports with both a FINDINGS and an IMPRESSION text (label -> text, unmodified)."""
    found = []
    with tarfile.open(shared_data / "iu" / "NLMCXR_reports.tgz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".xml"):
                root = ET.fromstring(archive.extractfile(member).read())
                sections = {n.get("Label"): (n.text or "").strip() for n in root.iter("AbstractText")}
                if sections.get("FINDINGS") and sections.get("IMPRESSION"):
                    found.append(sections)
            if len(found) == 300:
                break
    return found


LAYOUTS = {
    "one line (the drafts' form)": "FINDINGS: {f} IMPRESSION: {i}",
    "one line, title case": "Findings: {f} Impression: {i}",
    "two lines": "FINDINGS: {f}\nIMPRESSION: {i}",
    "headings on their own lines": "FINDINGS:\n{f}\n\nIMPRESSION:\n{i}\n",
    "bare headings": "Findings\n{f}\nImpression\n{i}",
    "dash": "FINDINGS - {f}\nIMPRESSION - {i}",
    "with indication": "INDICATION: {x}\nCOMPARISON: None.\nFINDINGS: {f}\nIMPRESSION: {i}",
    "conclusion": "Findings: {f}\nConclusion: {i}",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_real_reports_in_every_layout(iu_reports, layout):
    assert len(iu_reports) == 300
    for report in iu_reports:
        text = LAYOUTS[layout].format(f=report["FINDINGS"], i=report["IMPRESSION"], x=report.get("INDICATION") or "-")
        sections = split_sections(text)
        assert (sections.findings, sections.impression) == (report["FINDINGS"], report["IMPRESSION"]), text


def test_inline_headings_without_a_full_stop_and_the_preamble():
    sections = split_sections("Chest, two views. FINDINGS: heart normal, lungs clear IMPRESSION: normal chest")
    assert (sections.preamble, sections.findings, sections.impression) == (
        "Chest, two views.", "heart normal, lungs clear", "normal chest")
    sections = split_sections("Lungs clear. Impression: normal chest.")
    assert (sections.preamble, sections.findings, sections.impression) == ("Lungs clear.", "", "normal chest.")


def test_impression_only_and_empty_sections():
    sections = split_sections("IMPRESSION: No acute cardiopulmonary abnormality.")
    assert (sections.findings, sections.impression, sections.has_headers) == (
        "", "No acute cardiopulmonary abnormality.", True)
    sections = split_sections("FINDINGS: Heart normal.\nIMPRESSION:")
    assert (sections.findings, sections.impression, sections.sections) == (
        "Heart normal.", "", {"FINDINGS": "Heart normal.", "IMPRESSION": ""})


def test_what_is_not_a_heading():
    for text in ("The impression: is not a header here", "Heart normal, impression: none",
                 "Findings are unchanged since the X-ray.", "Comparison-based reading. Lungs clear."):
        sections = split_sections(text)
        assert (sections.has_headers, sections.findings) == (False, text), text
    # upper-case sub-headings that are no section stay inside it
    sections = split_sections("FINDINGS:\n LUNGS: Clear.\n HEART: Normal size.\nIMPRESSION: Normal.")
    assert sections.findings == "LUNGS: Clear.\n HEART: Normal size."


def test_repeated_heading_and_aliases():
    sections = split_sections("FINDINGS: Heart normal.\nIMPRESSION: Normal.\nFINDINGS: No effusion.\n"
                              "REASON FOR EXAM: cough\nClinical history: smoker")
    assert sections.findings == "Heart normal. No effusion."
    assert sections.sections["INDICATION"] == "cough" and sections.sections["HISTORY"] == "smoker"


def test_bad_input():
    with pytest.raises(TypeError, match="must be str, got bytes"):
        split_sections(b"FINDINGS: x")
