"""The offline FineRadScore-style judge on real IU chest X-ray reports (variants derived in memory)."""

import pytest

from analysis.findings import extract_findings, line_findings, severity_of
from analysis.judges import ErrorCategory, OfflineJudge, Severity
from analysis.reports import findings_lines

JUDGE = OfflineJudge()


def _asserted(lines):
    return [f for f in extract_findings(lines) if f.assertion != "absent"]


@pytest.fixture(scope="module")
def normal_reports(iu_reports):
    """Real reports without any asserted finding that mention pneumothorax only negated."""
    chosen = []
    for report in iu_reports:
        lines = findings_lines(report["findings"])
        found = extract_findings(lines)
        if found and not _asserted(lines) and any(f.concept == "pneumothorax" for f in found):
            chosen.append(report)
    assert len(chosen) > 100
    return chosen[:50]


def test_identical_reports_give_zero_discrepancies(iu_reports):
    for report in iu_reports[:400]:
        judgement = JUDGE.judge(report["findings"], report["findings"])
        assert judgement.discrepancies == (), report["name"]
        assert (judgement.judge, judgement.judge_version) == ("offline-negex", "cxr-lexicon-1")


def test_negated_mentions_are_not_findings(normal_reports):
    for report in normal_reports:
        found = extract_findings(findings_lines(report["findings"]))
        assert {f.assertion for f in found} == {"absent"}, report["name"]


def test_inserted_large_right_pneumothorax_is_one_urgent_false_finding(normal_reports):
    for report in normal_reports:
        candidate = report["findings"] + " Large right pneumothorax."
        judgement = JUDGE.judge(candidate, report["findings"])
        assert len(judgement.discrepancies) == 1, report["name"]
        (d,) = judgement.discrepancies
        assert d.category is ErrorCategory.FALSE_FINDING
        assert d.severity in (Severity.URGENT, Severity.EMERGENT)
        assert d.line == len(findings_lines(candidate))
        assert judgement.urgent_emergent == 1
        # the other way round the same finding is missing from the candidate
        (o,) = JUDGE.judge(report["findings"], candidate).discrepancies
        assert (o.category, o.line, o.correction) == (ErrorCategory.OMISSION, None, "Large right pneumothorax.")


def test_removing_a_positive_finding_is_an_omission(iu_reports):
    checked = 0
    for report in iu_reports:
        lines = findings_lines(report["findings"])
        for index, line in enumerate(lines):
            present = [f for f in line_findings(line) if f.assertion == "present"]
            concepts = {f.concept for f in present}
            others = {f.concept for f in _asserted(lines[:index] + lines[index + 1:])}
            if len(concepts) == 1 and not concepts & others:
                (concept,) = concepts
                candidate = " ".join(lines[:index] + lines[index + 1:])
                (d,) = [d for d in JUDGE.judge(candidate, report["findings"]).discrepancies
                        if d.category is not ErrorCategory.OMITS_COMPARISON]
                assert (d.category, d.comment, d.correction) == (ErrorCategory.OMISSION, concept, line)
                assert d.severity is severity_of(concept, max((f.size for f in present if f.size), default=None))
                checked += 1
                break
        if checked == 30:
            break
    assert checked == 30


def test_laterality_swap_is_a_wrong_location(iu_reports):
    checked = 0
    for report in iu_reports:
        lines = findings_lines(report["findings"])
        for index, line in enumerate(lines):
            present = [f for f in line_findings(line) if f.assertion == "present"]
            if len(present) == 1 and present[0].laterality == {"right"} and " left" not in line.lower():
                swapped = lines[:index] + [line.replace("right", "left").replace("Right", "Left")] + lines[index + 1:]
                found = [d for d in JUDGE.judge(" ".join(swapped), report["findings"]).discrepancies
                         if d.comment == present[0].concept]
                assert [(d.category, d.line) for d in found] == [(ErrorCategory.WRONG_LOCATION, index + 1)], line
                checked += 1
                break
        if checked == 20:
            break
    assert checked == 20


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("No pneumothorax, pleural effusion, or focal consolidation.",
         [("pneumothorax", "absent"), ("pleural effusion", "absent"), ("pneumonia", "absent")]),
        ("Possible left lower lobe pneumonia.", [("pneumonia", "uncertain")]),
        ("Cannot exclude pneumonia.", [("pneumonia", "uncertain")]),
        ("Pneumothorax has resolved.", [("pneumothorax", "absent")]),
        ("Tension pneumothorax on the left.", [("tension pneumothorax", "present")]),
    ],
)
def test_assertion_of_mentions(sentence, expected):
    assert [(f.concept, f.assertion) for f in line_findings(sentence)] == expected


def test_uncertain_versus_definite_and_size_are_wrong_severity():
    (d,) = JUDGE.judge("Possible right lower lobe pneumonia.", "Right lower lobe pneumonia.").discrepancies
    assert (d.category, d.severity) == (ErrorCategory.WRONG_SEVERITY, Severity.ACTIONABLE_NONURGENT)
    (d,) = JUDGE.judge("Tension pneumothorax on the right.", "No pneumothorax.").discrepancies
    assert (d.category, d.severity) == (ErrorCategory.FALSE_FINDING, Severity.EMERGENT)
    assert severity_of("pleural effusion", "large") is Severity.URGENT


def test_comparison_mentioned_only_in_candidate():
    (d,) = JUDGE.judge("No pneumothorax. Unchanged from prior.", "No pneumothorax.").discrepancies
    assert (d.category, d.severity, d.line) == (ErrorCategory.MENTIONS_COMPARISON, Severity.NOT_ACTIONABLE, 2)


def test_unknown_concept_and_bad_text_raise():
    with pytest.raises(KeyError):
        severity_of("not a concept")
    with pytest.raises(TypeError):
        JUDGE.judge(None, "No pneumothorax.")
