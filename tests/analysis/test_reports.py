"""Findings/impression splitting and template-use similarity."""

import pytest

from analysis.reports import findings_lines, numbered
from studyapp.report_sections import split_sections
from analysis.similarity import MEASURE, template_use


def test_split_sections_with_headers():
    text = "INDICATION: cough\nFINDINGS: Heart normal. No effusion.\nIMPRESSION: Normal chest."
    sections = split_sections(text)
    assert (sections.findings, sections.impression, sections.has_headers) == (
        "Heart normal. No effusion.", "Normal chest.", True)


def test_report_without_headers_is_all_findings():
    assert split_sections("Heart normal.\nLungs clear.").findings == "Heart normal.\nLungs clear."
    assert findings_lines("Heart normal.\nLungs clear. No effusion.") == ["Heart normal.", "Lungs clear.", "No effusion."]


def test_numbered_lines_on_a_real_report(iu_reports):
    report = iu_reports[0]
    lines = findings_lines(f"FINDINGS: {report['findings']}\nIMPRESSION: {report['impression']}")
    assert " ".join(lines) == " ".join(report["findings"].split())
    assert numbered(lines).splitlines()[0] == f"1. {lines[0]}"


def test_template_use():
    assert template_use("No pneumothorax. Heart normal.", "No pneumothorax. Heart normal.") == 1.0
    assert template_use("No pneumothorax.", "") == 0.0
    assert template_use("a b c d", "a b x y") == pytest.approx(0.5)
    assert MEASURE.startswith("rouge-l-f1")
    with pytest.raises(TypeError):
        template_use(None, "x")
    with pytest.raises(TypeError, match="must be str"):
        split_sections(3)


def test_inline_headers_and_impression_only_reports():
    inline = "Chest, two views. FINDINGS: Heart normal. No effusion. IMPRESSION: Normal chest."
    assert (split_sections(inline).findings, split_sections(inline).impression) == (
        "Heart normal. No effusion.", "Normal chest.")
    assert findings_lines("IMPRESSION: Small right effusion. No pneumothorax.") == [
        "Small right effusion.", "No pneumothorax."]
    assert findings_lines("FINDINGS:\nIMPRESSION: Normal chest.") == ["Normal chest."]
    assert split_sections("The impression: is not a header here").has_headers is False
