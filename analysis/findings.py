"""Structured reading of a chest X-ray findings section for the offline judge.

Every sentence (line) is read into :class:`Finding` records: the concept (the CheXpert observations plus free
air, widened mediastinum, pneumomediastinum, lobar collapse, interstitial edema signs, fractures and support
devices), its assertion (present / absent / uncertain), side, lobe or zone, size or severity grade, course since
a prior study, and for tubes and lines whether the tip is in a correct or a wrong place.

How:

- mentions are found with the regular expressions of :data:`LEXICON` (synonyms and paraphrases a radiologist
  writes: "air beneath both hemidiaphragms", "the mediastinum is widened", "Kerley B lines", "collapse of the
  right upper lobe"); overlapping matches keep the longest; a generic opacity is absorbed by a specific finding
  of the same sentence ("opacity consistent with pneumonia" is one consolidation);
- negation and uncertainty scopes come from NegEx (Chapman et al. 2001, J Biomed Inform 34:301) as implemented
  by the maintained ``negspacy`` component, run twice: with the clinical negation termset plus post-negations
  ("is not present", "is not seen", "has resolved") and with an uncertainty termset ("possible", "cannot be
  excluded", "concerning for"); spaCy's blank English tokenizer, no downloaded model;
- side, grade, lobe and course are read from the words of the mention and its neighbourhood (up to the
  neighbouring mention), device position from the sentence that names the device.

Severities follow FineRadScore's four levels for an ICU setting (Huang et al., arXiv 2405.20613):
:data:`LEXICON` gives each concept the severity of missing or inventing it; :func:`severity_of` raises it with
the grade (a tension pneumothorax is emergent, a large pleural effusion urgent) and for a malpositioned tube
(an endotracheal tube in a main bronchus or the oesophagus and an enteric tube in the airway are emergent; a
high or low tube, a line in the ventricle or jugular vein, a tube coiled in the oesophagus are urgent).

Why not medspaCy's ConText: medspacy 1.3.1 pins spacy<3.8, which needs numpy<2 and so conflicts with the
project's pinned numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import spacy
from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)
from negspacy.termsets import termset
from spacy.language import Language

from analysis.judges.base import Severity

LEXICON_VERSION = "cxr-structured-2"

E, U, A, N = Severity.EMERGENT, Severity.URGENT, Severity.ACTIONABLE_NONURGENT, Severity.NOT_ACTIONABLE


def _gap(most: int) -> str:
    """Up to ``most`` words that are not a negation (so "heart is not enlarged" is no cardiomegaly mention)."""
    return rf"(?:(?!(?:not|no|without|nor)\b)[\w'-]+,? ){{0,{most}}}"


_SIDE = r"(?:right|left)"
_LOBE = r"(?:upper|middle|lower)"


@dataclass(frozen=True)
class Concept:
    """One lexicon entry.

    Attributes:
        name: concept name (also the discrepancy comment).
        severity: FineRadScore severity of missing or falsely reporting it, before grade and position.
        sided: whether its side (right / left / both) is compared.
        patterns: regular expressions (lower-case text) of its mentions.
        generic: absorbed by any non-generic concept mentioned in the same sentence.
        device: tube or line kind ("ett", "enteric", "cvc", "chest tube"), "" for other concepts.
    """

    name: str
    severity: Severity
    sided: bool
    patterns: tuple[str, ...]
    generic: bool = False
    device: str = ""


#: The concepts read from a report (CheXpert observations, the issue's additions, support devices).
LEXICON: tuple[Concept, ...] = (
    Concept("pneumothorax", U, True, (
        r"pneumothora(?:x|ces)", r"\bptx\b", r"hydropneumothorax", r"visceral pleural (?:line|edge)",
        r"deep sulcus sign")),
    Concept("pneumoperitoneum", E, False, (
        r"pneumoperitoneum",
        r"free (?:intraperitoneal |intra-abdominal |subdiaphragmatic |abdominal )?(?:air|gas)",
        r"(?:air|gas|lucency|lucencies) (?:is |are |seen |noted )?(?:under|beneath|below) (?:the |both )?"
        r"(?:right |left )?(?:hemi-?)?diaphragms?",
        r"subdiaphragmatic (?:free )?(?:air|gas|lucency|lucencies)", r"rigler'?s? sign", r"football sign")),
    Concept("pneumomediastinum", U, False, (r"pneumomediastinum", r"mediastinal (?:emphysema|air)",
                                            r"continuous diaphragm sign")),
    Concept("hemothorax", U, True, (r"ha?emothora(?:x|ces)", r"ha?emopneumothorax")),
    Concept("lung contusion", U, True, (r"(?:pulmonary |lung )?contusions?",)),
    Concept("widened mediastinum", U, False, (
        r"widen(?:ed|ing) (?:of )?(?:the )?(?:superior |upper )?mediastin\w*",
        r"\bmediastin(?:um|al (?:silhouette|contours?|width|shadow))\b,? " + _gap(3)
        + r"(?:widened|wide|widening|broadened|enlarged)\b",
        r"(?:superior )?mediastinal (?:widening|enlargement|broadening)")),
    Concept("lobar collapse", U, True, (
        r"(?:lobar|lobe|lung|lingular?) (?:collapse|collapsed)\b",
        r"collapse of the (?:" + _SIDE + r" )?(?:" + _LOBE + r" lobe|lingula|lung)",
        r"(?:" + _LOBE + r" lobe|lingula|lung) (?:is |has |appears )?(?:completely |totally )?collapsed",
        r"lobar atelectasis", r"complete (?:" + _SIDE + r" )?(?:" + _LOBE + r" lobe )?atelectasis",
        r"(?:complete )?(?:opacification|white-?out) of the (?:" + _SIDE + r" )?hemithorax")),
    Concept("consolidation", U, True, (
        r"consolidat\w*", r"pneumonias?\b", r"bronchopneumonia", r"infiltrates?\b", r"infiltrat\w+",
        r"air[ -]?space (?:disease|opacit\w+|process|filling)", r"alveolar (?:opacit\w+|infiltrates?|process)",
        r"air bronchograms?")),
    Concept("pulmonary edema", U, False, (
        r"(?<!soft tissue )(?<!subcutaneous )(?<!wall )(?:pulmonary |interstitial |alveolar |perihilar )?"
        r"o?edema\b",
        r"kerley(?: [ab])? lines?", r"septal (?:line )?thickening", r"(?:interlobular )?septal lines",
        r"peribronchial cuffing", r"cephalization", r"(?:pulmonary )?(?:vascular|venous) congestion",
        r"fluid overload", r"bat ?wing", r"\bards\b", r"acute respiratory distress",
        r"(?:congestive )?(?:heart|cardiac) failure", r"\bchf\b",
        r"congestive changes", r"(?:pulmonary )?venous hypertension",
        # vascular signs, unless the sentence goes on to call them normal ("... appear within limits of normal")
        r"(?:(?:vascular|vasculature|vascularity) (?:prominence|engorgement|indistinctness)|"
        r"prominen(?:ce|t) (?:of )?(?:the )?(?:central )?(?:pulmonary )?(?:vascular\w*|vasculature)|"
        r"(?:central |pulmonary )+(?:vascular\w*|vasculature|vessels) (?:is |are |appears? )?(?:prominent|engorged)|"
        r"increased (?:lung |pulmonary )?vascularity|indistinct (?:pulmonary )?vascul\w*)"
        r"(?![^.;]*\b(?:within (?:the )?(?:normal limits|limits of normal)|normal|unremarkable)\b)")),
    Concept("pleural effusion", A, True, (
        r"(?<!pericardial )(?:pleural )?effusions?", r"pleural fluid",
        r"blunt(?:ing|ed) (?:of )?(?:the )?(?:" + _SIDE + r" )?(?:lateral |posterior )?costophrenic "
        r"(?:angles?|sulcus|sulci|recess)",
        r"costophrenic (?:angles?|sulcus|sulci|recess|\w+)(?: \w+){0,2} (?:blunted|blunting)")),
    Concept("cardiomegaly", A, False, (
        r"cardiomegaly",
        r"(?:heart|cardiac (?:silhouette|shadow|size)|heart size|cardiomediastinal silhouette) "
        r"(?:is |appears |remains |are )?" + _gap(2) + r"(?:enlarged|enlargement|large|increased)\b",
        r"enlarge(?:d|ment of the) (?:heart|cardiac silhouette|cardiac shadow|cardiomediastinal silhouette)",
        r"cardiac enlargement")),
    Concept("mass", A, True, (r"\bmass(?:es)?\b(?! effect)", r"mass-?like", r"\btumou?r\b")),
    Concept("nodule", A, True, (r"(?<!calcified )nodules?\b", r"nodular (?:opacit\w+|densit\w+|lesions?)")),
    Concept("fracture", A, True, (r"fractur\w*", r"\bfx\b")),
    Concept("lung opacity", A, True, (
        r"opacit(?:y|ies)", r"opacification", r"densit(?:y|ies)", r"haziness", r"hazy"), generic=True),
    Concept("atelectasis", N, True, (r"atelecta\w*", r"volume loss")),
    Concept("subcutaneous emphysema", A, True, (r"subcutaneous (?:emphysema|air|gas)", r"soft tissue (?:air|gas)")),
    Concept("hilar enlargement", A, True, (r"(?:hilar |mediastinal )?(?:lymph)?adenopathy", r"hilar enlargement",
                                         r"enlarged hil(?:um|a)")),
    Concept("pleural thickening", N, True, (r"pleural thickening", r"pleural plaques?", r"apical cap")),
    Concept("emphysema", N, False, (r"(?<!subcutaneous )emphysema\w*", r"hyperinflat\w*", r"hyperexpan\w*",
                                    r"\bcopd\b")),
    Concept("granuloma", N, True, (r"granulomas?\b", r"granulomatous", r"calcified nodules?")),
    Concept("scarring", N, True, (r"scarring", r"\bscar\b", r"fibrosis", r"fibrotic")),
    Concept("degenerative changes", N, False, (r"degenerative (?:changes?|disease)", r"spondylosis",
                                               r"osteophytes?")),
    Concept("hiatal hernia", N, False, (r"hiatal hernia", r"hiatus hernia")),
    Concept("scoliosis", N, False, (r"scoliosis",)),
    Concept("tortuous aorta", N, False, (r"tortuous (?:thoracic )?aorta", r"aortic tortuosity",
                                         r"tortuosity of the (?:thoracic )?aorta", r"aortic (?:atherosclerosis|"
                                         r"calcification)")),
    Concept("endotracheal tube", A, False, (r"endotracheal (?:tube|catheter)", r"\bet tube", r"\bett\b",
                                            r"\bet-tube"), device="ett"),
    Concept("enteric tube", A, False, (r"(?:naso|oro)gastric tube", r"\b(?:ng|og)t?\b(?: tube)?", r"\bngt\b",
                                       r"feeding tube", r"enteric tube", r"dobhoff(?: tube)?"), device="enteric"),
    Concept("central venous catheter", A, False, (
        r"central (?:venous )?(?:catheter|line)", r"\bcvc\b", r"\bpicc\b(?: line)?",
        r"(?:internal jugular|\bij\b|subclavian)(?: central)?(?: venous)? (?:catheter|line)",
        r"swan[- ]ganz(?: catheter)?", r"pulmonary artery catheter"), device="cvc"),
    Concept("chest tube", A, True, (r"chest tubes?", r"thoracostomy tubes?", r"pleural (?:drain|catheter)s?",
                                    r"pigtail catheter"), device="chest tube"),
    Concept("pacemaker", N, False, (r"pacemaker", r"\bpacer\b", r"\ba?icd\b", r"defibrillator"), device="other"),
)
CONCEPTS: dict[str, Concept] = {concept.name: concept for concept in LEXICON}

#: size / severity words -> ordinal grade (1 trace ... 4 large or severe, 5 tension).
_GRADES: tuple[tuple[str, float], ...] = (
    (r"tension|mediastinal shift|shift of the mediastinum|contralateral shift", 5),
    (r"(?:small|mild) to moderate|small-to-moderate|mild-to-moderate", 2.5),
    (r"moderate to (?:large|severe|marked)|moderate-to-(?:large|severe)", 3.5),
    (r"trace|tiny|minimal|minimally|subtle|slight|slightly", 1),
    (r"small|mild|mildly|minor", 2),
    (r"moderate|moderately", 3),
    (r"large|severe|severely|marked|markedly|extensive|massive|massively|huge|sizable", 4),
)
_GRADE = re.compile(r"\b(?:" + "|".join(f"(?P<g{i}>{p})" for i, (p, _) in enumerate(_GRADES)) + r")\b")

_CHANGE = (
    ("better", r"improv\w*|decreas\w*|resolving|smaller|less (?:prominent|conspicuous|pronounced)|diminish\w*|"
               r"regress\w*|clearing"),
    ("worse", r"increas\w*|worsen\w*|progress\w*|enlarging|larger|more (?:prominent|extensive|pronounced)"),
    ("new", r"\bnew(?:ly)?\b|interval (?:development|appearance)|developing|has developed"),
    ("stable", r"unchanged|stable|persistent|persists|again (?:seen|noted|demonstrated)|redemonstrat\w*|"
               r"similar|no (?:significant |interval )?change"),
)

#: tip positions per device kind: (pattern, malposition severity or None for a correct place).
_POSITIONS: dict[str, tuple[tuple[str, Optional[Severity]], ...]] = {
    "ett": (
        (r"(?:right|left) (?:main ?stem|main|mainstem|main-stem) bronch\w*|bronch(?:us|i)\b|esophag\w*|"
         r"oesophag\w*|hypopharynx|pharynx", E),
        (r"at the (?:level of the )?carina|too (?:low|high|deep|distal)|(?:low|high)[- ]lying|"
         r"(?:above|at) the (?:level of the )?(?:thoracic inlet|clavicles)|retract\w*|withdraw\w*|malposition\w*|"
         r"should be (?:advanced|pulled)|(?<![\d.])(?:0|1|1\.\d|[89]|\d\d)(?:\.\d+)? ?cm above the carina", U),
        (r"\d+(?:\.\d+)? ?cm above the carina|satisfactory|appropriate|standard|good|adequate|acceptable|"
         r"expected|(?:well|correctly|optimally) positioned|mid(?:-| )?trachea|within the trachea|in the trachea|"
         r"unchanged (?:in )?position", None),
    ),
    "enteric": (
        (r"bronch\w*|\blung\b|lung base|airway|trachea|pleura\w*", E),
        (r"coil\w*|(?:in|within) the (?:mid |distal |proximal |upper |lower )?(?:esophagus|oesophagus)|"
         r"above the (?:ge|gastroesophageal|gastro-esophageal) junction|pharynx|malposition\w*|"
         r"should be advanced", U),
        (r"stomach|gastric|below the (?:left )?(?:hemi-?)?diaphragm|duoden\w*|jejun\w*|small bowel|"
         r"beyond the (?:ge|gastroesophageal) junction|satisfactory|appropriate|standard|expected|"
         r"courses? below", None),
    ),
    "cvc": (
        (r"right ventric\w*|internal jugular vein|jugular vein|directed (?:cephalad|superiorly)|"
         r"(?:cephalad|superiorly) (?:into|toward)|into the neck|azygos|coil\w*|arter(?:y|ial)|"
         r"contralateral (?:brachiocephalic|subclavian)|malposition\w*|should be (?:retracted|withdrawn)", U),
        (r"\bsvc\b|superior vena cava|cavo-?atrial junction|brachiocephalic|right atrium|satisfactory|"
         r"appropriate|standard|expected|good position", None),
    ),
    "chest tube": (
        (r"(?:fissure|subcutaneous|soft tissues?|chest wall|outside the (?:pleural|chest))|malposition\w*", U),
        (r"satisfactory|appropriate|standard|expected|apex|apical", None),
    ),
}

_BOTH = r"bilateral(?:ly)?|both|bibasilar|bibasal|bi-?apical|right (?:greater|larger|more) than left|" \
        r"left (?:greater|larger|more) than right"
_SIDE_WORD = re.compile(rf"\b(?:(?P<both>{_BOTH})|(?P<right>right|rt)|(?P<left>left|lt))\b")
_LOCATION = (
    ("upper", r"upper (?:lobe|lung|zone)|apex|apices|apical|lingula(?!r)"),
    ("middle", r"middle lobe|mid(?:-| )?lung|perihilar|lingular"),
    ("lower", r"lower (?:lobe|lung|zone)|\bbases?\b|basilar|basal|costophrenic|infrahilar|retrocardiac"),
)
_ACUTE_FRACTURE = re.compile(r"\b(?:healed|healing|old|remote|chronic|prior|previous|united|ununited)\b")
_COMPARISON = re.compile(r"\b(?:compared|comparison|prior|previous|interval|unchanged|stable|again (?:seen|noted)|"
                         r"improved|worsened|new)\b")


@dataclass(frozen=True)
class Finding:
    """One mention of a lexicon concept in one line.

    Attributes:
        concept: :attr:`Concept.name`.
        assertion: ``present``, ``uncertain`` or ``absent`` (negated).
        laterality: frozenset of ``right``/``left`` (both = bilateral); empty when not stated or not sided.
        grade: ordinal size/severity grade (1 trace/minimal, 2 small/mild, 2.5 small to moderate, 3 moderate,
            3.5 moderate to large, 4 large/severe/extensive, 5 tension) or None when not stated.
        location: frozenset of ``upper``/``middle``/``lower`` zones or lobes; empty when not stated.
        change: ``new``, ``worse``, ``better``, ``stable`` or None (course since a prior study).
        malposition: for tubes and lines, the severity of a stated malposition; None when the position is
            correct or not stated.
        positioned: for tubes and lines, whether a correct position is stated.
        old: for fractures, whether described as healed / old (not actionable).
        line: 1-based line number in the findings section.
        text: the words of the mention.
    """

    concept: str
    assertion: str
    laterality: frozenset[str]
    grade: Optional[float]
    location: frozenset[str]
    change: Optional[str]
    malposition: Optional[Severity]
    positioned: bool
    old: bool
    line: int
    text: str = ""


def severity_of(concept: str, grade: Optional[float] = None, malposition: Optional[Severity] = None,
                old: bool = False) -> Severity:
    """FineRadScore severity (ICU setting) of missing or falsely reporting ``concept`` as described.

    The table severity of :data:`LEXICON`, raised: a tension pneumothorax (grade 5) is emergent; a pleural
    effusion of grade >= 4 (large) is urgent; a tube or line with a stated malposition takes that
    malposition's severity; an old or healed fracture is not actionable.

    Raises:
        KeyError: unknown concept.
    """
    severity = CONCEPTS[concept].severity
    if concept == "pneumothorax" and grade is not None and grade >= 5:
        return E
    if concept == "pleural effusion" and grade is not None and grade >= 4:
        return U
    if malposition is not None and malposition.rank > severity.rank:
        return malposition
    if concept == "fracture" and old:
        return N
    return severity


def _negex_termsets() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    clinical = termset("en_clinical").get_patterns()
    termination = clinical["termination"] + ["there is", "there are", "and there", "with a", "otherwise",
                                             "whereas", "while", "in addition", "with interval", "with new"]
    never_negate = ["no change", "no significant change", "no interval change", "not changed",
                    "not significantly changed", "not significantly", "not substantially", "not increased",
                    "not decreased", "not improved", "not worsened", "not appreciably changed",
                    "no longer seen", "is not significantly", "are not significantly", "is not changed",
                    "are not changed", "has not changed", "have not changed", "is not substantially",
                    "is not increased", "has not increased", "has not decreased", "is not well", "not well seen"]
    negation = {
        "pseudo_negations": clinical["pseudo_negations"] + never_negate + [
            "cannot exclude", "can not exclude", "cannot be excluded", "can not be excluded", "not excluded",
            "cannot rule out", "not be excluded", "not be ruled out", "cannot be ruled out"],
        "preceding_negations": clinical["preceding_negations"] + ["clear",
            "clear of", "resolution of", "resolved", "no evidence for", "negative for", "absent", "nor",
            "removal of", "removed", "no convincing", "no definite", "no visible"],
        "following_negations": clinical["following_negations"] + [
            "is not", "are not", "not seen", "not identified", "not visualized", "not present", "not demonstrated",
            "not appreciated", "not evident", "not detected", "is absent", "are absent", "has resolved",
            "have resolved", "resolved", "no longer", "has been removed", "have been removed", "is excluded",
            "are excluded"],
        "termination": termination,
    }
    uncertainty = {
        "pseudo_negations": ["no change", "not certain if", "without", "no evidence"],
        "preceding_negations": [
            "possible", "possibly", "probable", "probably", "may", "might", "could", "questionable",
            "question of", "suspicious for", "suspected", "suspect", "concerning for", "concern for",
            "worrisome for", "cannot exclude", "can not exclude", "cannot rule out", "evaluation for",
            "suggestive of", "suggesting", "suggests", "differential", "versus", "vs", "borderline",
            "equivocal", "indeterminate", "not excluded", "questionably", "likely"],
        "following_negations": [
            "is possible", "not excluded", "cannot be excluded", "can not be excluded", "is not excluded",
            "not entirely excluded", "is suspected", "are suspected", "is questioned", "versus", "vs",
            "not ruled out", "cannot be ruled out"],
        "termination": termination,
    }
    return negation, uncertainty


_MATCHERS: tuple[tuple[Concept, re.Pattern], ...] = tuple(
    (concept, re.compile("|".join(f"(?:{p})" for p in concept.patterns))) for concept in LEXICON)


def _mentions(text: str) -> list[tuple[int, int, Concept]]:
    """Non-overlapping (start, end, concept) character spans in lower-case ``text``, longest first."""
    found = [(m.start(), m.end(), concept) for concept, pattern in _MATCHERS for m in pattern.finditer(text)
             if m.end() > m.start()]
    found.sort(key=lambda f: (-(f[1] - f[0]), f[0]))
    chosen: list[tuple[int, int, Concept]] = []
    for start, end, concept in found:
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, concept))
    if any(not c.generic for _, _, c in chosen):
        chosen = [m for m in chosen if not m[2].generic]
    return sorted(chosen, key=lambda f: f[0])


@Language.component("cxr_mentions")
def _set_mentions(doc):
    """spaCy component: sets ``doc.ents`` to the :data:`LEXICON` mentions (label = concept name)."""
    spans = []
    for start, end, concept in _mentions(doc.text.lower()):
        span = doc.char_span(start, end, label=concept.name, alignment_mode="expand")
        if span is not None and all(span.end <= s.start or span.start >= s.end for s in spans):
            spans.append(span)
    doc.ents = spans
    return doc


@lru_cache(maxsize=1)
def _pipeline() -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("cxr_mentions")
    negation, uncertainty = _negex_termsets()
    nlp.add_pipe("negex", name="negation", config={"neg_termset": negation, "extension_name": "negex"})
    nlp.add_pipe("negex", name="uncertainty", config={"neg_termset": uncertainty, "extension_name": "uncertain"})
    return nlp


def _side_of(match: re.Match) -> frozenset[str]:
    if match.group("both"):
        return frozenset({"right", "left"})
    return frozenset({"right"} if match.group("right") else {"left"})


def _side(text: str, last: bool) -> frozenset[str]:
    """The side named closest to the mention (the last one before it, or the first after it); before a
    mention, sides joined by "and" count together ("right lower lobe and left basilar consolidation")."""
    matches = list(_SIDE_WORD.finditer(text))
    if not matches:
        return frozenset()
    if last:
        joined = [m for m in matches if re.search(r"\band\b", text[m.end():matches[-1].start()])]
        return frozenset().union(*(_side_of(m) for m in joined + [matches[-1]]))
    return _side_of(matches[0])


def _grade(text: str, last: bool) -> Optional[float]:
    matches = list(_GRADE.finditer(text))
    if not matches:
        return None
    match = matches[-1] if last else matches[0]
    return next(_GRADES[int(name[1:])][1] for name, value in match.groupdict().items() if value)


def _first(patterns, text: str):
    for value, pattern in patterns:
        if re.search(pattern, text):
            return value
    return None


def _position(kind: str, sentence: str) -> tuple[Optional[Severity], bool]:
    """(malposition severity or None, whether a correct position is stated) of a ``kind`` device."""
    for pattern, severity in _POSITIONS.get(kind, ()):
        if re.search(pattern, sentence):
            return severity, severity is None
    return None, False


@lru_cache(maxsize=200_000)
def line_findings(line: str, number: int = 1) -> tuple[Finding, ...]:
    """The :class:`Finding` records of one sentence ``line`` (numbered ``number``), negated ones included.

    Raises:
        TypeError: ``line`` is not a string.
    """
    if not isinstance(line, str):
        raise TypeError(f"report line must be str, got {type(line).__name__}")
    doc = _pipeline()(line)
    lowered = line.lower()
    ents = list(doc.ents)
    found = []
    for index, ent in enumerate(ents):
        concept = CONCEPTS[ent.label_]
        before = lowered[ents[index - 1].end_char if index else 0:ent.start_char]
        after = lowered[ent.end_char:ents[index + 1].start_char if index + 1 < len(ents) else len(lowered)]
        own = lowered[ent.start_char:ent.end_char]
        near = f"{before} {own} {after}"
        assertion = "absent" if ent._.negex else "uncertain" if ent._.uncertain else "present"
        sides = frozenset()
        if concept.sided:
            sides = _side(own, last=True) or _side(before, last=True) or _side(after, last=False)
        grade = _grade(before, last=True) or _grade(own, last=True) or _grade(after, last=False)
        if concept.name == "pneumothorax" and re.search(_GRADES[0][0], lowered):
            grade = 5
        elif grade == 5:
            grade = 4
        location = frozenset(zone for zone, pattern in _LOCATION if re.search(pattern, near))
        malposition, positioned = _position(concept.device, lowered) if concept.device else (None, False)
        found.append(Finding(concept.name, assertion, sides, grade, location if concept.sided else frozenset(),
                             _first(_CHANGE, near), malposition, positioned,
                             bool(concept.name == "fracture" and _ACUTE_FRACTURE.search(near)), number, ent.text))
    return tuple(found)


def extract_findings(lines: list[str]) -> list[Finding]:
    """:func:`line_findings` of every line of a findings section (line numbers 1-based), negated ones included."""
    return [finding for number, line in enumerate(lines, start=1) for finding in line_findings(line, number)]


def mentions_comparison(lines: list[str]) -> Optional[int]:
    """1-based number of the first line that refers to a prior study, or None."""
    for number, line in enumerate(lines, start=1):
        if _COMPARISON.search(line.lower()):
            return number
    return None
