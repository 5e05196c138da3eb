"""Benchmark of a discrepancy judge on real IU chest X-ray reports with injected errors (issue 17, item 3).

Each case is a (candidate, reference) pair built from a real report of ``../shared/data/iu`` (MeSH-normal
reports as the base of injected errors; any report for the reordered/paraphrased controls):

- ``omission``: the reference holds one more finding sentence than the candidate;
- ``false_finding``: the candidate holds one more finding sentence (worded differently from the reference's
  way of saying the same thing, where the reference says anything about it);
- ``laterality``: the same finding on the other side;
- ``negation``: the finding asserted in one report and denied in the other;
- ``severity``: the same finding with another size or severity grade (small vs large, mild vs severe, tension);
- ``device``: a tube or line in a correct position in one report and malpositioned in the other;
- controls: ``paraphrase`` (the same findings in other words, sentences reordered), ``reorder`` (sentences of
  any real report shuffled) and ``normal_pair`` (two different MeSH-normal reports).

Honesty: the finding wordings below were written for this benchmark as a radiologist would write them, before
and apart from the judge's lexicon (``analysis/findings.py``); each list has a ``tune`` part (looked at while
building the lexicon) and a ``heldout`` part (not looked at; reported separately). Every finding carries the
severity a radiologist would give a missed or false report of it (FineRadScore, ICU setting), so the expected
"urgent or emergent" flag comes from here, not from the judge.

Printed per split: per error kind the share flagged with any discrepancy (comparison notes excluded) and, for
errors that should be urgent/emergent, the share flagged urgent/emergent; for controls, the share with any
urgent/emergent discrepancy; and the share of pairs whose urgent/emergent count changes with the direction of
the comparison. Targets: >= 90 %, >= 85 %, <= 2 %.

Then two checks in real radiologists' wording, outside the targets, each on a tune and a held-out half of the
IU reports (even / odd report numbers): a MeSH-normal report against a report indexed with a finding (IU's
MeSH indexing says what the candidate omits and how severe that is), and real sentences with the side flipped.

Usage: python bench/judge.py [--split tune|heldout|both] [--per-kind N] [--seed S] [--show-misses N]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IU_REPORTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "iu" / "NLMCXR_reports.tgz"

URGENT = {"urgent", "emergent"}


@dataclass(frozen=True)
class Wording:
    """One way of writing a finding; ``{side}``/``{Side}`` take right/left, ``{other}`` the other side."""

    text: str
    grade: str = ""  # "", "low" or "high": size/severity grade, for controls of equal meaning


@dataclass(frozen=True)
class Finding:
    """A finding of the bank: expected severity of missing or inventing it, whether it has a side, wordings
    (present, and denied for negation flips), each split into tune and held-out lists."""

    name: str
    severity: str
    sided: bool
    tune: tuple[Wording, ...]
    heldout: tuple[Wording, ...]
    denied_tune: tuple[str, ...] = ()
    denied_heldout: tuple[str, ...] = ()


W = Wording

FINDINGS: tuple[Finding, ...] = (
    Finding("pneumothorax", "urgent", True,
            (W("Small {side} apical pneumothorax.", "low"), W("There is a {side}-sided pneumothorax."),
             W("{Side} pneumothorax measuring approximately 2 cm at the apex.", "low"),
             W("A thin visceral pleural line is seen at the {side} apex consistent with pneumothorax.")),
            (W("Moderate {side} pneumothorax is present.", "high"), W("There is a pneumothorax on the {side}."),
             W("Interval development of a {side} apical pneumothorax."),
             W("Visceral pleural line along the {side} lateral chest wall compatible with pneumothorax."),
             W("{Side} apical PTX.")),
            ("No {side} pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax."),
            ("Pneumothorax is not present on the {side}.", "The {side} lung is fully expanded without pneumothorax.",
             "No pneumothorax is identified.", "Negative for pneumothorax.")),
    Finding("tension pneumothorax", "emergent", True,
            (W("Large {side} tension pneumothorax with mediastinal shift to the {other}."),
             W("{Side} tension pneumothorax.")),
            (W("Tension pneumothorax on the {side}."),
             W("Large {side} pneumothorax with shift of the mediastinum to the {other}, consistent with tension."))),
    Finding("free air", "emergent", False,
            (W("Free air under the right hemidiaphragm."), W("There is free intraperitoneal air."),
             W("Pneumoperitoneum.")),
            (W("Air beneath both hemidiaphragms, consistent with pneumoperitoneum."),
             W("Subdiaphragmatic free gas is noted."), W("Free air below the diaphragm.")),
            ("No free air under the diaphragm.",), ("No subdiaphragmatic free air is seen.",)),
    Finding("consolidation", "urgent", True,
            (W("Focal consolidation in the {side} lower lobe."),
             W("{Side} lower lobe airspace opacity consistent with pneumonia."),
             W("Patchy {side} basilar consolidation."), W("{Side} upper lobe pneumonia.")),
            (W("Dense airspace consolidation of the {side} upper lobe with air bronchograms."),
             W("Airspace disease at the {side} base, compatible with infection."),
             W("{Side} lower lobe infiltrate."), W("New opacity in the {side} lower lobe representing pneumonia.")),
            ("No focal consolidation.", "No {side} lower lobe consolidation."),
            ("There is no focal airspace disease.", "No consolidation is seen in the {side} lung.",
             "The {side} lower lobe is clear.")),
    Finding("pulmonary edema", "urgent", False,
            (W("Pulmonary edema."), W("Diffuse interstitial edema with Kerley B lines."),
             W("Moderate pulmonary edema.", "high"), W("Pulmonary vascular congestion with interstitial edema.")),
            (W("Kerley B lines and peribronchial cuffing, consistent with interstitial edema."),
             W("Cephalization of the pulmonary vasculature and interstitial edema."),
             W("Bilateral perihilar alveolar edema."), W("Increased interstitial markings with Kerley B lines.")),
            ("No pulmonary edema.", "No evidence of edema."),
            ("There is no pulmonary edema.", "No interstitial or alveolar edema.")),
    Finding("widened mediastinum", "urgent", False,
            (W("The mediastinum is widened."), W("Widening of the superior mediastinum.")),
            (W("The mediastinal silhouette is abnormally wide."),
             W("Mediastinal contour is widened, measuring 9 cm at the level of the aortic knob.")),
            ("The mediastinum is not widened.",), ("No mediastinal widening.",)),
    Finding("lobar collapse", "urgent", True,
            (W("Collapse of the {side} upper lobe."), W("Complete {side} lower lobe collapse.")),
            (W("{Side} lower lobe is collapsed."),
             W("Volume loss with complete opacification of the {side} lower lobe consistent with lobar collapse.")),
            ("No lobar collapse.",), ("No {side} lobar collapse.",)),
    Finding("pneumomediastinum", "urgent", False,
            (W("Pneumomediastinum is present."),),
            (W("Streaky lucencies in the mediastinum compatible with pneumomediastinum."),),
            ("No pneumomediastinum.",), ("There is no pneumomediastinum.",)),
    Finding("large pleural effusion", "urgent", True,
            (W("Large {side} pleural effusion.", "high"),
             W("Large {side}-sided effusion with compressive atelectasis.", "high")),
            (W("Large {side} pleural effusion opacifying most of the hemithorax.", "high"),
             W("Extensive {side} pleural fluid.", "high"))),
    Finding("small pleural effusion", "actionable_nonurgent", True,
            (W("Small {side} pleural effusion.", "low"),
             W("Blunting of the {side} costophrenic angle consistent with a small effusion.", "low")),
            (W("Trace {side} pleural fluid.", "low"), W("Small {side}-sided pleural effusion.", "low"),
             W("Minimal {side} pleural effusion.", "low")),
            ("No {side} pleural effusion.", "No pleural effusion."),
            ("There is no pleural effusion on the {side}.", "Costophrenic angles are sharp.")),
    Finding("cardiomegaly", "actionable_nonurgent", False,
            (W("Cardiomegaly."), W("The heart is enlarged.")),
            (W("Mild enlargement of the cardiac silhouette.", "low"), W("Cardiac silhouette is enlarged.")),
            ("No cardiomegaly.",), ("Heart size is normal.",)),
    Finding("nodule", "actionable_nonurgent", True,
            (W("A 1.5 cm nodule in the {side} upper lobe."),),
            (W("Rounded nodular density projecting over the {side} mid lung."),)),
    Finding("mass", "actionable_nonurgent", True,
            (W("{Side} hilar mass."),), (W("4 cm mass in the {side} upper lobe."),)),
    Finding("fracture", "actionable_nonurgent", True,
            (W("Acute fracture of the {side} 6th rib."), W("Displaced {side} clavicle fracture.")),
            (W("Nondisplaced fractures of the {side} posterior 5th and 6th ribs."),
             W("Fracture through the {side} lateral 7th rib.")),
            ("No acute rib fracture.",), ("No displaced fracture is seen.",)),
    Finding("atelectasis", "not_actionable", True,
            (W("Subsegmental atelectasis at the {side} base."),),
            (W("Minor linear atelectasis in the {side} lower lung."), W("Discoid atelectasis at the {side} base."))),
)


@dataclass(frozen=True)
class GradeChange:
    """The same finding at a low and a high grade; ``severity`` of the error (FineRadScore, ICU)."""

    name: str
    severity: str
    tune: tuple[tuple[str, str], ...]
    heldout: tuple[tuple[str, str], ...]


GRADE_CHANGES: tuple[GradeChange, ...] = (
    GradeChange("pneumothorax size", "urgent",
                (("Small {side} pneumothorax.", "Large {side} pneumothorax."),),
                (("Tiny {side} apical pneumothorax.", "Moderate to large {side} pneumothorax."),
                 ("Small {side} pneumothorax.", "Large {side} pneumothorax, increased in size."))),
    GradeChange("tension", "emergent",
                (("Small {side} pneumothorax.", "{Side} tension pneumothorax."),),
                (("Trace {side} apical pneumothorax.",
                  "Large {side} pneumothorax under tension with mediastinal shift to the {other}."),)),
    GradeChange("effusion size", "urgent",
                (("Small {side} pleural effusion.", "Large {side} pleural effusion."),),
                (("Trace {side} pleural effusion.", "Large {side} effusion."),)),
    GradeChange("edema severity", "urgent",
                (("Mild pulmonary edema.", "Severe pulmonary edema."),),
                (("Mild interstitial edema.", "Extensive bilateral alveolar edema."),
                 ("Minimal pulmonary vascular congestion.", "Marked pulmonary edema."))),
    GradeChange("cardiomegaly severity", "actionable_nonurgent",
                (("Mild cardiomegaly.", "Severe cardiomegaly."),),
                (("The heart is mildly enlarged.", "Marked cardiomegaly."),)),
)


@dataclass(frozen=True)
class Device:
    """A device written in a correct and in a malpositioned place; ``severity`` of the malposition."""

    name: str
    severity: str
    tune: tuple[tuple[str, ...], tuple[str, ...]]
    heldout: tuple[tuple[str, ...], tuple[str, ...]]


DEVICES: tuple[Device, ...] = (
    Device("endotracheal tube", "emergent",
           (("Endotracheal tube tip is 4 cm above the carina.", "ET tube in satisfactory position."),
            ("The endotracheal tube tip is in the right mainstem bronchus.",
             "Endotracheal tube has been advanced into the right main bronchus.")),
           (("The endotracheal tube terminates 5 cm above the carina.", "Endotracheal tube in standard position."),
            ("The endotracheal tube terminates in the right mainstem bronchus.", "ET tube tip is within the esophagus.",
             "Endotracheal tube tip projects over the right main stem bronchus; recommend retraction by 3 cm."))),
    Device("enteric tube", "emergent",
           (("Nasogastric tube courses below the diaphragm with tip in the stomach.",),
            ("Nasogastric tube tip is in the right lower lobe bronchus.",)),
           (("Enteric tube tip in the gastric body.",),
            ("Dobhoff tube passes into the left main bronchus.", "Feeding tube terminates in the right lung base."))),
    Device("central venous catheter", "urgent",
           (("Right internal jugular central venous catheter tip in the SVC.",),
            ("Right IJ central line with tip in the right ventricle.",)),
           (("Left subclavian line terminates at the cavoatrial junction.",),
            ("PICC tip projects over the right ventricle.",
             "Left subclavian catheter is directed cephalad into the left internal jugular vein."))),
)

#: whole-report rewrites for paraphrase controls: (pattern, tune replacement, held-out replacement).
PARAPHRASES: tuple[tuple[str, str, str], ...] = (
    (r"\bNo pneumothorax\b", "There is no evidence of pneumothorax", "Pneumothorax is not seen"),
    (r"\b[Hh]eart size (is )?normal\b", "The cardiac silhouette is normal in size", "Normal heart size"),
    (r"\bThe lungs are clear\b", "Both lungs are clear", "The lungs are clear bilaterally"),
    (r"\bNo pleural effusion\b", "No effusion is seen", "The pleural spaces are clear"),
    (r"\bno focal consolidation\b", "no focal airspace opacity", "no confluent airspace consolidation"),
    (r"\bThe heart is normal in size\b", "Heart size is within normal limits", "Normal cardiac size"),
    (r"\bThe mediastinum is unremarkable\b", "Normal mediastinal contours",
     "The mediastinal silhouette is within normal limits"),
    (r"\bNo acute bony abnormalit(y|ies)\b", "The osseous structures are intact", "No acute osseous abnormality"),
)

#: IU MeSH major terms -> severity of missing that finding (for the real-wording check).
MESH_SEVERITY: dict[str, str] = {
    "Pneumothorax": "urgent", "Pneumonia": "urgent", "Consolidation": "urgent", "Infiltrate": "urgent",
    "Airspace Disease": "urgent", "Pulmonary Edema": "urgent", "Pulmonary Congestion": "urgent",
    "Cardiomegaly": "actionable_nonurgent", "Pleural Effusion": "actionable_nonurgent",
    "Nodule": "actionable_nonurgent", "Mass": "actionable_nonurgent", "Fractures, Bone": "actionable_nonurgent",
    "Pulmonary Atelectasis": "not_actionable", "Emphysema": "not_actionable", "Hernia, Hiatal": "not_actionable",
}

KINDS = ("omission", "false_finding", "laterality", "negation", "severity", "device")
CONTROLS = ("paraphrase", "reorder", "normal_pair")


@dataclass(frozen=True)
class Case:
    """One benchmark pair. ``expected`` is the severity of the injected error ("" for a control)."""

    kind: str
    finding: str
    candidate: str
    reference: str
    expected: str = ""


def load_reports(path: Path = IU_REPORTS) -> list[dict]:
    """Real IU reports with a FINDINGS section: ``{"name", "findings", "impression", "normal", "terms"}``;
    ``normal`` is True when the report's MeSH major terms are exactly "normal", ``terms`` holds the heads of its
    MeSH major terms (IU's own indexing, independent of any judge)."""
    reports = []
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            root = ET.fromstring(archive.extractfile(member).read())
            sections = {node.get("Label"): (node.text or "").strip() for node in root.iter("AbstractText")}
            majors = [(node.text or "").strip() for node in root.iter("major")]
            if sections.get("FINDINGS"):
                reports.append({"name": member.name, "findings": sections["FINDINGS"],
                                "impression": sections.get("IMPRESSION", ""),
                                "normal": [m.lower() for m in majors] == ["normal"],
                                "terms": {m.split("/")[0].strip() for m in majors}})
    reports.sort(key=lambda r: r["name"])
    return reports


def _sentences(text: str) -> list[str]:
    """Sentences of ``text``, each ending with a full stop (some IU reports omit the last one)."""
    return [s if s[-1] in ".!?" else s + "." for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


_ZONES = (("upper", r"upper|apex|apical"), ("middle", r"middle|mid lung"), ("lower", r"lower|base|basilar"))


def _meaning(wording: Wording) -> tuple:
    """Grade and lung zone of a wording: two wordings of a finding with the same meaning are paraphrases."""
    return wording.grade, frozenset(zone for zone, pattern in _ZONES if re.search(pattern, wording.text.lower()))


def _fill(text: str, side: str) -> str:
    other = "left" if side == "right" else "right"
    return text.format(side=side, Side=side.capitalize(), other=other)


def _insert(base: str, sentence: str, rng: random.Random) -> str:
    sentences = _sentences(base)
    sentences.insert(rng.randint(0, len(sentences)), sentence)
    return " ".join(sentences)


def _pair(base: str, first: str, second: str, rng: random.Random) -> tuple[str, str]:
    """Two copies of ``base`` with ``first`` and ``second`` inserted at the same sentence position."""
    position = rng.randint(0, len(_sentences(base)))
    a, b = _sentences(base), _sentences(base)
    a.insert(position, first)
    b.insert(position, second)
    return " ".join(a), " ".join(b)


def paraphrase(text: str, split: str) -> str:
    """``text`` with the benchmark's paraphrase rewrites of ``split`` applied."""
    for pattern, tune, heldout in PARAPHRASES:
        text = re.sub(pattern, tune if split == "tune" else heldout, text)
    return text


def build_cases(reports: list[dict], split: str, per_kind: int = 150, seed: int = 0) -> list[Case]:
    """The benchmark pairs of ``split`` ("tune" or "heldout"): ``per_kind`` cases per error kind and control.

    Raises:
        ValueError: unknown split, or too few normal reports.
    """
    if split not in ("tune", "heldout"):
        raise ValueError(f"split must be 'tune' or 'heldout', got {split!r}")
    rng = random.Random(f"{seed}-{split}")
    normal = [r["findings"] for r in reports if r["normal"]]
    if len(normal) < 50:
        raise ValueError(f"need at least 50 MeSH-normal reports, got {len(normal)}")
    findings = [f for f in FINDINGS if getattr(f, split)]
    cases: list[Case] = []

    def wording(finding: Finding) -> tuple[Wording, str]:
        side = rng.choice(("right", "left"))
        return rng.choice(getattr(finding, split)), side

    for _ in range(per_kind):
        finding = rng.choice(findings)
        w, side = wording(finding)
        base = rng.choice(normal)
        with_finding = _insert(base, _fill(w.text, side), rng)
        cases.append(Case("omission", finding.name, base, with_finding, finding.severity))
        finding = rng.choice(findings)
        w, side = wording(finding)
        base = rng.choice(normal)
        cases.append(Case("false_finding", finding.name, _insert(base, _fill(w.text, side), rng), base,
                          finding.severity))
    sided = [f for f in findings if f.sided]
    for _ in range(per_kind):
        finding = rng.choice(sided)
        w, side = wording(finding)
        other = "left" if side == "right" else "right"
        candidate, reference = _pair(rng.choice(normal), _fill(w.text, other), _fill(w.text, side), rng)
        cases.append(Case("laterality", finding.name, candidate, reference, finding.severity))
    denied = [f for f in findings if getattr(f, f"denied_{split}")]
    for i in range(per_kind):
        finding = rng.choice(denied)
        w, side = wording(finding)
        negative = _fill(rng.choice(getattr(finding, f"denied_{split}")), side)
        positive, negated = _pair(rng.choice(normal), _fill(w.text, side), negative, rng)
        pair = (negated, positive) if i % 2 == 0 else (positive, negated)
        cases.append(Case("negation", finding.name, *pair, finding.severity))
    for i in range(per_kind):
        change = rng.choice(GRADE_CHANGES)
        low, high = rng.choice(getattr(change, split))
        side = rng.choice(("right", "left"))
        a, b = _pair(rng.choice(normal), _fill(low, side), _fill(high, side), rng)
        pair = (a, b) if i % 2 == 0 else (b, a)
        cases.append(Case("severity", change.name, *pair, change.severity))
    for i in range(per_kind):
        device = rng.choice(DEVICES)
        good, bad = getattr(device, split)
        a, b = _pair(rng.choice(normal), rng.choice(good), rng.choice(bad), rng)
        pair = (a, b) if i % 2 == 0 else (b, a)
        cases.append(Case("device", device.name, *pair, device.severity))
    for _ in range(per_kind):
        finding = rng.choice(findings)
        side = rng.choice(("right", "left"))
        options = getattr(finding, split)
        first = rng.choice(options)
        second = rng.choice([w for w in options if _meaning(w) == _meaning(first)])
        base = rng.choice(normal)
        reference = _insert(base, _fill(first.text, side), rng)
        sentences = _sentences(paraphrase(_insert(base, _fill(second.text, side), rng), split))
        rng.shuffle(sentences)
        cases.append(Case("paraphrase", finding.name, " ".join(sentences), reference))
    for _ in range(per_kind):
        report = rng.choice(reports)["findings"]
        sentences = _sentences(report)
        rng.shuffle(sentences)
        cases.append(Case("reorder", "", " ".join(sentences), report))
    for _ in range(per_kind):
        first, second = rng.sample(normal, 2)
        cases.append(Case("normal_pair", "", first, second))
    return cases


def _report_half(report: dict) -> str:
    """``tune`` for IU reports with an even number, ``heldout`` for odd ones."""
    return "tune" if int(re.search(r"(\d+)\.xml$", report["name"]).group(1)) % 2 == 0 else "heldout"


def real_label_cases(reports: list[dict], split: str, per_term: int = 40, seed: int = 0) -> list[Case]:
    """Real wording, written by neither the benchmark's nor the judge's author: a MeSH-normal report as the
    candidate against a real report (FINDINGS and IMPRESSION) indexed with one term of :data:`MESH_SEVERITY`;
    the candidate omits that finding, whose expected severity comes from the term. ``split``: IU reports with
    an even number (``tune``: their misses were looked at) or an odd one (``heldout``: never looked at)."""
    rng = random.Random(f"{seed}-real-{split}")
    normal = [r["findings"] for r in reports if r["normal"]]
    cases = []
    for term, severity in MESH_SEVERITY.items():
        labelled = [r for r in reports if term in r["terms"] and _report_half(r) == split]
        for report in rng.sample(labelled, min(per_term, len(labelled))):
            cases.append(Case("real_mesh", term, rng.choice(normal),
                              f"{report['findings']} {report['impression']}".strip(), severity))
    return cases


#: IU MeSH head -> a keyword a sentence about it contains (bench-side selection, not the judge's lexicon).
SIDE_FLIP_KEYWORDS: dict[str, str] = {
    "Pneumothorax": "pneumothorax", "Pneumonia": "pneumonia", "Consolidation": "consolidation",
    "Infiltrate": "infiltrate", "Airspace Disease": "airspace", "Pleural Effusion": "effusion", "Nodule": "nodul",
    "Mass": "mass", "Fractures, Bone": "fracture", "Pulmonary Atelectasis": "atelecta", "Opacity": "opaci",
}


def real_side_flip_cases(reports: list[dict], split: str, seed: int = 0) -> list[Case]:
    """Real sentences with the side flipped: in a report indexed with a term of :data:`SIDE_FLIP_KEYWORDS`, a
    sentence that names the term's keyword, exactly one side (right or left) and no negation gets the other
    side; the candidate is the report with that sentence flipped, the reference the report as written. Same
    halves as :func:`real_label_cases`. Expected: some discrepancy (urgency depends on the sentence)."""
    rng = random.Random(f"{seed}-flip-{split}")
    cases = []
    for term, keyword in SIDE_FLIP_KEYWORDS.items():
        for report in [r for r in reports if term in r["terms"] and _report_half(r) == split]:
            text = f"{report['findings']} {report['impression']}".strip()
            sentences = _sentences(text)
            usable = [i for i, sentence in enumerate(sentences) if keyword in sentence.lower()
                      and len(re.findall(r"\b(?:right|left)\b", sentence, re.IGNORECASE)) == 1
                      and not re.search(r"\b(?:no|not|without|negative|resolved|bilateral)\b", sentence, re.IGNORECASE)]
            if not usable:
                continue
            index = rng.choice(usable)
            flipped = re.sub(r"\b(right|left|Right|Left|RIGHT|LEFT)\b",
                             lambda m: {"right": "left", "left": "right"}[m.group(1).lower()]
                             if m.group(1).islower() else {"right": "Left", "left": "Right"}[m.group(1).lower()],
                             sentences[index])
            candidate = " ".join(sentences[:index] + [flipped] + sentences[index + 1:])
            cases.append(Case("real_side_flip", term, candidate, " ".join(sentences), "actionable_nonurgent"))
    return cases


def evaluate(judge, cases: list[Case]) -> dict[str, dict[str, float]]:
    """Per kind: ``n``, ``flagged`` (share with a non-comparison discrepancy), ``n_urgent_expected``,
    ``urgent_sensitivity`` (share of those flagged urgent/emergent), ``urgent_any`` (share with any
    urgent/emergent) and ``asymmetric`` (share whose urgent/emergent count changes with the direction)."""
    comparison = {"mentions_comparison_absent_from_reference", "omits_comparison"}
    rows: dict[str, dict[str, float]] = {}
    for kind in KINDS + CONTROLS + ("real_mesh", "real_side_flip"):
        chosen = [c for c in cases if c.kind == kind]
        if not chosen:
            continue
        forward = [judge.judge(c.candidate, c.reference) for c in chosen]
        backward = [judge.judge(c.reference, c.candidate) for c in chosen]
        flagged = [any(d.category.value not in comparison for d in j.discrepancies) for j in forward]
        urgent = [j.urgent_emergent > 0 for j in forward]
        should = [u for c, u in zip(chosen, urgent) if c.expected in URGENT]
        rows[kind] = {
            "n": len(chosen), "flagged": sum(flagged) / len(chosen),
            "n_urgent_expected": len(should),
            "urgent_sensitivity": sum(should) / len(should) if should else float("nan"),
            "urgent_any": sum(urgent) / len(chosen),
            "asymmetric": sum(f.urgent_emergent != b.urgent_emergent for f, b in zip(forward, backward)) / len(chosen),
        }
    return rows


def misses(judge, cases: list[Case], limit: int = 20) -> list[str]:
    """Up to ``limit`` descriptions of cases the judge got wrong (for tuning on the tune split only)."""
    out = []
    for c in cases:
        j = judge.judge(c.candidate, c.reference)
        if c.expected:
            bad = (c.expected in URGENT and j.urgent_emergent == 0) or not j.discrepancies
        else:
            bad = j.urgent_emergent > 0
        if bad:
            out.append(f"[{c.kind}/{c.finding}] expected {c.expected or 'no urgent'}; got "
                       f"{[(d.category.value, d.severity.value, d.comment) for d in j.discrepancies]}\n"
                       f"  C: {c.candidate}\n  R: {c.reference}")
        if len(out) >= limit:
            break
    return out


def summary(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """Pooled figures against the targets: ``urgent_sensitivity`` over all errors that should be
    urgent/emergent, ``flagged`` over all injected errors, ``control_urgent`` over all controls."""
    errors = [rows[k] for k in KINDS if k in rows]  # the real-wording check is reported apart
    controls = [rows[k] for k in CONTROLS if k in rows]
    n_should = sum(r["n_urgent_expected"] for r in errors)
    return {
        "urgent_sensitivity": sum(r["urgent_sensitivity"] * r["n_urgent_expected"] for r in errors
                                  if r["n_urgent_expected"]) / n_should,
        "flagged": sum(r["flagged"] * r["n"] for r in errors) / sum(r["n"] for r in errors),
        "control_urgent": sum(r["urgent_any"] * r["n"] for r in controls) / sum(r["n"] for r in controls),
        "asymmetric": sum(r["asymmetric"] * r["n"] for r in errors + controls) / sum(r["n"] for r in errors + controls),
    }


def _print(split: str, rows: dict[str, dict[str, float]]) -> bool:
    print(f"\nsplit: {split}")
    print(f"{'kind':<14}{'n':>5}{'any discrepancy':>17}{'should be U/E':>15}{'flagged U/E':>13}{'any U/E':>9}"
          f"{'asymmetric':>12}")
    for kind, r in rows.items():
        sens = f"{r['urgent_sensitivity']:.1%}" if r["n_urgent_expected"] else "-"
        print(f"{kind:<14}{r['n']:>5}{r['flagged']:>17.1%}{r['n_urgent_expected']:>15}{sens:>13}"
              f"{r['urgent_any']:>9.1%}{r['asymmetric']:>12.1%}")
    s = summary(rows)
    met = s["urgent_sensitivity"] >= 0.90 and s["flagged"] >= 0.85 and s["control_urgent"] <= 0.02
    print(f"should-be-urgent/emergent errors flagged urgent/emergent: {s['urgent_sensitivity']:.1%} (target >= 90%)")
    print(f"injected errors flagged as some discrepancy: {s['flagged']:.1%} (target >= 85%)")
    print(f"controls with any urgent/emergent: {s['control_urgent']:.1%} (target <= 2%)")
    print(f"pairs whose urgent/emergent count depends on the direction: {s['asymmetric']:.1%}")
    print(f"targets {'met' if met else 'NOT met'} on the {split} split")
    return met


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0 when every split run meets the targets, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["tune", "heldout", "both"], default="both")
    parser.add_argument("--per-kind", type=int, default=150, help="cases per error kind and per control")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-misses", type=int, default=0, help="print this many misses (tune split only)")
    args = parser.parse_args(argv)
    from analysis.judges import OfflineJudge

    judge = OfflineJudge()
    reports = load_reports()
    print(f"judge: {judge.name} {judge.version}; IU reports: {len(reports)} "
          f"({sum(r['normal'] for r in reports)} MeSH-normal)")
    ok = True
    for split in (("tune", "heldout") if args.split == "both" else (args.split,)):
        cases = build_cases(reports, split, args.per_kind, args.seed)
        ok &= _print(split, evaluate(judge, cases))
        if split == "tune" and args.show_misses:
            print("\n".join(misses(judge, cases, args.show_misses)))
    for split in (("tune", "heldout") if args.split == "both" else (args.split,)):
        real = real_label_cases(reports, split, seed=args.seed)
        print(f"\nreal wording, {split} half (IU MeSH-indexed report vs a MeSH-normal candidate that omits it; "
              "not in the targets):")
        print(f"{'MeSH term':<24}{'n':>5}{'any discrepancy':>17}{'expected':>22}{'any U/E':>9}")
        for term, severity in MESH_SEVERITY.items():
            row = evaluate(judge, [c for c in real if c.finding == term])["real_mesh"]
            print(f"{term:<24}{row['n']:>5}{row['flagged']:>17.1%}{severity:>22}{row['urgent_any']:>9.1%}")
        pooled = evaluate(judge, real)["real_mesh"]
        print(f"urgent terms flagged urgent/emergent: {pooled['urgent_sensitivity']:.1%} of "
              f"{pooled['n_urgent_expected']}; any discrepancy: {pooled['flagged']:.1%} of {pooled['n']}")
        flips = real_side_flip_cases(reports, split, seed=args.seed)
        row = evaluate(judge, flips)["real_side_flip"]
        print(f"real sentences with the side flipped: {row['flagged']:.1%} of {row['n']} flagged as some "
              f"discrepancy, {row['urgent_any']:.1%} urgent/emergent")
        if split == "tune" and args.show_misses:
            print("\n".join(misses(judge, [c for c in real if c.expected in URGENT] + flips, args.show_misses)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
