"""Chest X-ray finding extraction for the offline judge: a phrase lexicon with a documented severity table,
spaCy's rule-based EntityRuler for mentions, and NegEx (the maintained ``negspacy`` component) run twice:
once with the clinical negation termset, once with an uncertainty termset, so that "no pneumothorax" is not a
finding and "possible pneumonia" is an uncertain one. Laterality and size come from the words near a mention.

Why not medspaCy's ConText: medspacy 1.3.1 pins spacy<3.8, which needs numpy<2 and so conflicts with the
project's pinned numpy 2.4.6. spaCy 3.8 + negspacy 1.1 install cleanly and need no downloaded model
(``spacy.blank("en")``).

Severity table (FineRadScore severities, ICU setting; section 2.4 of the paper counts urgent + emergent):
``SEVERITY_TABLE`` below; a finding described as "large" is raised one level, up to urgent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import spacy
from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)
from negspacy.termsets import termset

from analysis.judges.base import Severity

LEXICON_VERSION = "cxr-lexicon-1"

E, U, A, N = Severity.EMERGENT, Severity.URGENT, Severity.ACTIONABLE_NONURGENT, Severity.NOT_ACTIONABLE

#: concept -> (severity if missed or falsely reported, phrases that mention it).
SEVERITY_TABLE: dict[str, tuple[Severity, tuple[str, ...]]] = {
    "tension pneumothorax": (E, ("tension pneumothorax",)),
    "pneumoperitoneum": (E, ("pneumoperitoneum", "free air", "free intraperitoneal air", "free subdiaphragmatic air")),
    "malpositioned endotracheal tube": (
        E,
        ("malpositioned endotracheal tube", "right mainstem intubation", "esophageal intubation",
         "endotracheal tube in the right mainstem bronchus", "endotracheal tube is malpositioned"),
    ),
    "pneumothorax": (U, ("pneumothorax", "pneumothoraces")),
    "pneumonia": (U, ("pneumonia", "consolidation", "consolidations", "airspace disease", "airspace opacity",
                      "air space disease", "infiltrate", "infiltrates")),
    "pulmonary edema": (U, ("pulmonary edema", "edema", "interstitial edema", "vascular congestion",
                            "pulmonary vascular congestion")),
    "malpositioned line": (U, ("malpositioned catheter", "malpositioned line", "catheter is malpositioned",
                               "malpositioned picc", "coiled catheter")),
    "pneumomediastinum": (U, ("pneumomediastinum",)),
    "widened mediastinum": (U, ("widened mediastinum", "mediastinal widening")),
    "pleural effusion": (A, ("pleural effusion", "pleural effusions", "effusion", "effusions")),
    "mass": (A, ("mass", "masses")),
    "nodule": (A, ("nodule", "nodules", "nodular opacity", "nodular opacities")),
    "fracture": (A, ("fracture", "fractures")),
    "cardiomegaly": (A, ("cardiomegaly", "enlarged heart", "cardiac enlargement", "enlarged cardiac silhouette")),
    "atelectasis": (N, ("atelectasis", "atelectatic", "subsegmental atelectasis")),
    "granuloma": (N, ("granuloma", "granulomas", "calcified granuloma")),
    "emphysema": (N, ("emphysema", "hyperinflation", "hyperexpanded", "hyperinflated")),
    "scarring": (N, ("scarring", "scar", "fibrosis")),
    "degenerative changes": (N, ("degenerative changes", "degenerative change", "spondylosis")),
    "hiatal hernia": (N, ("hiatal hernia",)),
    "scoliosis": (N, ("scoliosis",)),
    "tortuous aorta": (N, ("tortuous aorta", "aortic tortuosity", "tortuosity of the aorta")),
}

_UNCERTAINTY_TERMS = {
    "pseudo_negations": ["no change", "not certain if"],
    "preceding_negations": [
        "possible", "possibly", "probable", "probably", "likely", "may", "might", "could", "questionable",
        "suspicious for", "suspected", "concerning for", "cannot exclude", "can not exclude", "evaluation for",
        "cannot rule out", "suggestive of", "suggests", "differential includes", "versus", "vs", "borderline",
    ],
    "following_negations": [
        "is possible", "not excluded", "cannot be excluded", "can not be excluded", "is not excluded",
        "not entirely excluded", "is suspected", "is likely", "are likely",
    ],
    "termination": list(termset("en_clinical").get_patterns()["termination"]),
}
_NEGATION_EXTRA = {
    # "cannot exclude X" and "X is not excluded" are uncertainty, not negation
    "pseudo_negations": ["cannot exclude", "can not exclude", "cannot be excluded", "not excluded",
                         "cannot rule out", "not be excluded", "no change", "no significant change"],
    "preceding_negations": ["clear of", "resolution of", "resolved"],
    "following_negations": ["has resolved", "have resolved", "is absent", "are absent", "not seen",
                            "not identified", "not visualized"],
}
_RIGHT = {"right", "right-sided", "rt"}
_LEFT = {"left", "left-sided", "lt"}
_BOTH = {"bilateral", "bilaterally", "both", "bibasilar", "bibasal"}
_SIZES = {"small": "small", "tiny": "small", "trace": "small", "minimal": "small", "moderate": "moderate",
          "large": "large", "massive": "large", "extensive": "large"}
_COMPARISON_WORDS = ("compared", "comparison", "prior", "previous", "interval", "unchanged", "stable",
                     "again seen", "again noted", "improved", "worsened", "new ")


@dataclass(frozen=True)
class Finding:
    """One mention of a lexicon concept in one line.

    Attributes:
        concept: key of ``SEVERITY_TABLE``.
        assertion: ``present``, ``uncertain`` or ``absent`` (negated).
        laterality: frozenset of ``right``/``left`` (both = bilateral); empty when not stated.
        size: ``small``/``moderate``/``large`` or None.
        line: 1-based line number in the findings section.
    """

    concept: str
    assertion: str
    laterality: frozenset[str]
    size: Optional[str]
    line: int


def severity_of(concept: str, size: Optional[str] = None) -> Severity:
    """Table severity of ``concept``; "large" raises a non-urgent finding one level (at most to urgent).

    Raises:
        KeyError: unknown concept.
    """
    severity = SEVERITY_TABLE[concept][0]
    if size == "large" and severity.rank < Severity.URGENT.rank:
        severity = list(Severity)[severity.rank]
    return severity


@lru_cache(maxsize=1)
def _pipeline() -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    ruler.add_patterns(
        [{"label": "FINDING", "pattern": phrase, "id": concept}
         for concept, (_, phrases) in SEVERITY_TABLE.items() for phrase in phrases]
    )
    negation = {key: list(terms) + _NEGATION_EXTRA.get(key, [])
                for key, terms in termset("en_clinical").get_patterns().items()}
    nlp.add_pipe("negex", name="negation", config={"neg_termset": negation,
                                                   "ent_types": ["FINDING"], "extension_name": "negex"})
    nlp.add_pipe("negex", name="uncertainty", config={"neg_termset": _UNCERTAINTY_TERMS,
                                                      "ent_types": ["FINDING"], "extension_name": "uncertain"})
    return nlp


def _nearby(doc, ent, before: int = 5, after: int = 5) -> list[str]:
    start, end = max(ent.start - before, 0), min(ent.end + after, len(doc))
    return [token.lower_ for token in doc[start:ent.start]] + [token.lower_ for token in doc[ent.end:end]]


def _laterality(words: list[str]) -> frozenset[str]:
    sides = set()
    if _BOTH & set(words):
        sides = {"right", "left"}
    if _RIGHT & set(words):
        sides.add("right")
    if _LEFT & set(words):
        sides.add("left")
    return frozenset(sides)


@lru_cache(maxsize=200_000)
def line_findings(line: str, number: int = 1) -> tuple[Finding, ...]:
    """Findings mentioned in one sentence ``line`` (numbered ``number``), negated ones included."""
    doc = _pipeline()(line)
    found = []
    for ent in doc.ents:
        words = _nearby(doc, ent)
        assertion = "absent" if ent._.negex else "uncertain" if ent._.uncertain else "present"
        size = next((_SIZES[w] for w in words[:5] if w in _SIZES), None)
        found.append(Finding(ent.ent_id_, assertion, _laterality(words), size, number))
    return tuple(found)


def extract_findings(lines: list[str]) -> list[Finding]:
    """Findings of every line of a findings section (line numbers 1-based), negated ones included."""
    return [finding for number, line in enumerate(lines, start=1) for finding in line_findings(line, number)]


def mentions_comparison(lines: list[str]) -> Optional[int]:
    """1-based number of the first line that refers to a prior study, or None."""
    for number, line in enumerate(lines, start=1):
        lowered = f" {line.lower()} "
        if any(word in lowered for word in _COMPARISON_WORDS):
            return number
    return None
