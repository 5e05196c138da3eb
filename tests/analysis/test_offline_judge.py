"""The offline FineRadScore-style judge: hand-written pairs of each error kind with the severity a radiologist
gives them, controls, symmetry, and real IU chest X-ray reports (variants derived in memory)."""

import random

import pytest

from analysis.findings import LEXICON_VERSION, extract_findings, line_findings, severity_of
from analysis.judges import ErrorCategory, OfflineJudge, Severity
from analysis.reports import findings_lines

JUDGE = OfflineJudge()
C, S = ErrorCategory, Severity

BASE = "Heart size is normal. The lungs are clear. No pleural effusion."

#: (candidate sentence, reference sentence, expected (category, severity) of the one discrepancy)
ERRORS = [
    # omissions, including a post-negation ("is not present") against a positive statement
    ("No pneumothorax.", "Large right pneumothorax.", (C.OMISSION, S.URGENT)),
    ("Pneumothorax is not present on the right.", "Small right pneumothorax.", (C.OMISSION, S.URGENT)),
    ("Pneumothorax is not seen.", "Small left apical pneumothorax.", (C.OMISSION, S.URGENT)),
    ("No free air.", "Free air under the right hemidiaphragm.", (C.OMISSION, S.EMERGENT)),
    ("", "Small left pleural effusion.", (C.OMISSION, S.ACTIONABLE_NONURGENT)),
    # false findings in the paraphrases a radiologist writes
    ("The endotracheal tube terminates in the right mainstem bronchus.", "", (C.FALSE_FINDING, S.EMERGENT)),
    ("The mediastinum is widened.", "", (C.FALSE_FINDING, S.URGENT)),
    ("Collapse of the right upper lobe.", "", (C.FALSE_FINDING, S.URGENT)),
    ("Air beneath both hemidiaphragms.", "", (C.FALSE_FINDING, S.EMERGENT)),
    ("Kerley B lines.", "", (C.FALSE_FINDING, S.URGENT)),
    ("Pneumomediastinum.", "", (C.FALSE_FINDING, S.URGENT)),
    ("Acute fracture of the left 5th rib.", "", (C.FALSE_FINDING, S.ACTIONABLE_NONURGENT)),
    ("Healed left rib fractures.", "", (C.FALSE_FINDING, S.NOT_ACTIONABLE)),
    ("Mild cardiomegaly.", "", (C.FALSE_FINDING, S.ACTIONABLE_NONURGENT)),
    ("Possible left lower lobe pneumonia.", "", (C.FALSE_FINDING, S.ACTIONABLE_NONURGENT)),
    # wrong side
    ("Left lower lobe consolidation.", "Right lower lobe consolidation.", (C.WRONG_LOCATION, S.URGENT)),
    ("Large left pneumothorax.", "Large right pneumothorax.", (C.WRONG_LOCATION, S.URGENT)),
    ("Small right pleural effusion.", "Small left pleural effusion.", (C.WRONG_LOCATION, S.ACTIONABLE_NONURGENT)),
    # size and severity: an error on an urgent finding stays urgent; tension is emergent
    ("Small right pneumothorax.", "Large right pneumothorax.", (C.WRONG_SEVERITY, S.URGENT)),
    ("Small right pneumothorax.", "Right tension pneumothorax.", (C.WRONG_SEVERITY, S.EMERGENT)),
    ("Mild pulmonary edema.", "Severe pulmonary edema.", (C.WRONG_SEVERITY, S.URGENT)),
    ("Trace left pleural effusion.", "Large left pleural effusion.", (C.WRONG_SEVERITY, S.URGENT)),
    ("Mild cardiomegaly.", "Severe cardiomegaly.", (C.WRONG_SEVERITY, S.NOT_ACTIONABLE)),
    ("Possible right lower lobe pneumonia.", "Right lower lobe pneumonia.", (C.WRONG_SEVERITY, S.ACTIONABLE_NONURGENT)),
    # devices: position of the tip
    ("Endotracheal tube tip 4 cm above the carina.", "The ET tube tip is in the right mainstem bronchus.",
     (C.WRONG_LOCATION, S.EMERGENT)),
    ("Nasogastric tube tip in the stomach.", "Nasogastric tube tip in the left lower lobe bronchus.",
     (C.WRONG_LOCATION, S.EMERGENT)),
    ("Right IJ central venous catheter tip in the SVC.", "Right IJ central venous catheter tip in the right ventricle.",
     (C.WRONG_LOCATION, S.URGENT)),
    ("Endotracheal tube in place.", "Endotracheal tube tip at the level of the carina, recommend retraction.",
     (C.OMISSION, S.URGENT)),
    ("ETT tip 4.0 cm above the carina.", "ETT tip 1 cm above the carina.", (C.WRONG_LOCATION, S.URGENT)),
    # other signs and findings
    ("", "Deep sulcus sign on the left.", (C.OMISSION, S.URGENT)),
    ("Small right hemothorax.", "", (C.FALSE_FINDING, S.URGENT)),
    # both sides named in both reports, but a lobe on the other side
    ("Left upper lobe consolidation. Right lower lobe consolidation.",
     "Right upper lobe consolidation. Left lower lobe consolidation.", (C.WRONG_LOCATION, S.URGENT)),
    # course since the prior study
    ("Right pleural effusion has increased.", "Right pleural effusion has decreased.",
     (C.WRONG_SEVERITY, S.ACTIONABLE_NONURGENT)),
]

#: pairs a radiologist reads as saying the same thing
SAME = [
    ("No pneumothorax.", "Pneumothorax is not seen."),
    ("No focal consolidation, pleural effusion or pneumothorax.",
     "There is no evidence of pneumothorax. No effusion. No airspace disease."),
    ("The heart is not enlarged. The mediastinum is not widened.", "Heart size and mediastinal contours are normal."),
    ("Small right apical pneumothorax.", "There is a small pneumothorax at the right apex."),
    ("Right lower lobe airspace opacity consistent with pneumonia.", "Pneumonia in the right lower lobe."),
    ("Endotracheal tube in satisfactory position.", "ETT tip 5 cm above the carina."),
    ("Lungs are clear without pneumothorax, and there is a small left effusion.", "Small left pleural effusion."),
    ("Right lower lobe and left basilar consolidation.", "Bibasilar consolidation."),
    ("Heart size and pulmonary vascular engorgement appear within limits of normal.", "Heart size is normal."),
]


@pytest.mark.parametrize(("candidate", "reference", "expected"), ERRORS)
def test_each_error_kind_gets_its_category_and_severity(candidate, reference, expected):
    judgement = JUDGE.judge(f"{BASE} {candidate}", f"{BASE} {reference}")
    assert [(d.category, d.severity) for d in judgement.discrepancies] == [expected]
    assert judgement.urgent_emergent == int(expected[1].is_urgent_or_emergent)
    # the other direction: the same urgent/emergent count (symmetry of the pair)
    assert JUDGE.judge(f"{BASE} {reference}", f"{BASE} {candidate}").urgent_emergent == judgement.urgent_emergent


@pytest.mark.parametrize(("first", "second"), SAME)
def test_same_meaning_in_other_words_is_no_discrepancy(first, second):
    assert JUDGE.judge(first, second).discrepancies == ()
    assert JUDGE.judge(second, first).discrepancies == ()


def test_discrepancy_lines_and_corrections():
    candidate = "Heart size is normal. Left lower lobe consolidation. No pneumothorax."
    (d,) = JUDGE.judge(candidate, "Heart size is normal. Right lower lobe consolidation.").discrepancies
    assert (d.line, d.correction, d.comment) == (
        2, "Right lower lobe consolidation.", "consolidation: left instead of right")
    (o,) = JUDGE.judge("Heart size is normal.", "Heart size is normal. Large right pneumothorax.").discrepancies
    assert (o.line, o.correction, o.category) == (None, "Large right pneumothorax.", C.OMISSION)
    (f,) = JUDGE.judge("Heart size is normal. Large right pneumothorax.", "Heart size is normal.").discrepancies
    assert (f.line, f.correction, f.category) == (2, None, C.FALSE_FINDING)


def test_bilateral_against_one_side_is_an_omission_of_the_other_side():
    (d,) = JUDGE.judge("Small right pleural effusion.", "Small bilateral pleural effusions.").discrepancies
    assert (d.category, d.severity, d.comment) == (C.OMISSION, S.ACTIONABLE_NONURGENT, "pleural effusion: left")


def test_impression_only_report_is_read():
    findings = "FINDINGS: Large right pneumothorax. Heart size normal.\nIMPRESSION: Large right pneumothorax."
    impression_only = "IMPRESSION: Large right pneumothorax. Heart size normal."
    assert JUDGE.judge(impression_only, findings).discrepancies == ()
    inline = "Chest, 2 views. FINDINGS: Large right pneumothorax. Heart size normal. IMPRESSION: Pneumothorax."
    assert JUDGE.judge(inline, findings).discrepancies == ()
    (d,) = JUDGE.judge("IMPRESSION: No acute disease.", findings).discrepancies
    assert (d.category, d.severity) == (C.OMISSION, S.URGENT)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("No pneumothorax, pleural effusion, or focal consolidation.",
         [("pneumothorax", "absent"), ("pleural effusion", "absent"), ("consolidation", "absent")]),
        ("Pneumothorax is not present on the right.", [("pneumothorax", "absent")]),
        ("A pneumothorax is not seen.", [("pneumothorax", "absent")]),
        ("The pneumothorax is not significantly changed.", [("pneumothorax", "present")]),
        ("Possible left lower lobe pneumonia.", [("consolidation", "uncertain")]),
        ("Cannot exclude pneumonia.", [("consolidation", "uncertain")]),
        ("Pneumothorax has resolved.", [("pneumothorax", "absent")]),
        ("No pneumothorax; there is a small left pleural effusion.",
         [("pneumothorax", "absent"), ("pleural effusion", "present")]),
        ("No pneumothorax, but there is a small left pleural effusion.",
         [("pneumothorax", "absent"), ("pleural effusion", "present")]),
        ("There are no XXXX of a pleural effusion.", [("pleural effusion", "absent")]),
        ("Soft tissue edema of the chest wall.", []),
        ("Heart size is normal.", []),
    ],
)
def test_assertion_of_mentions(sentence, expected):
    assert [(f.concept, f.assertion) for f in line_findings(sentence)] == expected


def test_structured_attributes():
    (f,) = line_findings("Large right tension pneumothorax with mediastinal shift to the left.")
    assert (f.concept, f.laterality, f.grade) == ("pneumothorax", {"right"}, 5)
    (f,) = line_findings("Collapse of the left upper lobe.")
    assert (f.concept, f.laterality, f.location) == ("lobar collapse", {"left"}, {"upper"})
    (f,) = line_findings("Interval increase in a moderate right pleural effusion.")
    assert (f.grade, f.change, f.laterality) == (3, "worse", {"right"})
    (f,) = line_findings("The endotracheal tube terminates in the right mainstem bronchus.")
    assert (f.concept, f.malposition, f.laterality) == ("endotracheal tube", S.EMERGENT, frozenset())
    (f,) = line_findings("ET tube 4 cm above the carina.")
    assert (f.malposition, f.positioned) == (None, True)
    assert severity_of("pneumothorax", 5) is S.EMERGENT
    assert severity_of("pleural effusion", 4) is S.URGENT
    assert severity_of("cardiomegaly", 4) is S.ACTIONABLE_NONURGENT


@pytest.fixture(scope="module")
def real_pairs(iu_reports):
    rng = random.Random(7)
    return [tuple(r["findings"] for r in rng.sample(iu_reports, 2)) for _ in range(300)]


def test_identical_real_reports_give_zero_discrepancies(iu_reports):
    for report in iu_reports[:1000]:
        judgement = JUDGE.judge(report["findings"], report["findings"])
        assert judgement.discrepancies == (), report["name"]
        assert (judgement.judge, judgement.judge_version) == ("offline-negex", LEXICON_VERSION)


def test_reordered_real_reports_give_zero_discrepancies(iu_reports):
    rng = random.Random(3)
    for report in iu_reports[:500]:
        lines = findings_lines(report["findings"])
        rng.shuffle(lines)
        assert JUDGE.judge(" ".join(lines), report["findings"]).discrepancies == (), report["name"]


def test_urgent_count_does_not_depend_on_direction_on_real_pairs(real_pairs):
    counts = [(JUDGE.judge(a, b).urgent_emergent, JUDGE.judge(b, a).urgent_emergent) for a, b in real_pairs]
    assert all(forward == backward for forward, backward in counts)
    assert sum(forward > 0 for forward, _ in counts) > 0  # real pairs do differ sometimes


def test_removing_a_real_urgent_finding_is_an_urgent_omission(iu_reports):
    checked = 0
    for report in iu_reports:
        lines = findings_lines(report["findings"])
        for index, line in enumerate(lines):
            present = [f for f in line_findings(line) if f.assertion != "absent"]
            present = [f for f in present if f.assertion == "present" and len(present) == 1
                       and severity_of(f.concept, f.grade).is_urgent_or_emergent]
            rest = {f.concept for f in extract_findings(lines[:index] + lines[index + 1:]) if f.assertion != "absent"}
            if len(present) == 1 and present[0].concept not in rest:
                candidate = " ".join(lines[:index] + lines[index + 1:])
                found = [d for d in JUDGE.judge(candidate, report["findings"]).discrepancies
                         if d.category is C.OMISSION]
                assert [(d.comment, d.correction, d.severity) for d in found] == [
                    (present[0].concept, line, severity_of(present[0].concept, present[0].grade))], line
                checked += 1
                break
        if checked == 30:
            break
    assert checked == 30


def test_all_identical_reports_and_bad_text():
    text = "Heart size is normal. No pneumothorax."
    assert [j.urgent_emergent for j in JUDGE.judge_many([(text, text)] * 5)] == [0] * 5
    assert JUDGE.judge("", "").discrepancies == ()
    with pytest.raises(TypeError, match="must be str"):
        JUDGE.judge(None, "No pneumothorax.")
    with pytest.raises(KeyError):
        severity_of("not a concept")
