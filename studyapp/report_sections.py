"""Sections of a free-text radiology report (FINDINGS, IMPRESSION, INDICATION...): the one parser the DICOM SR
export (:mod:`studyapp.services.structured_reports`), the analysis' findings lines (:mod:`analysis.reports`) and
the engine's report targets (:mod:`engine.data.adapters.common`) share.

A heading is one of :data:`HEADINGS` (or an alias such as CONCLUSION or IMPRESSIONS) followed by ``:`` or a dash
(``-``, en or em dash), found

- at the start of a line, in any case ("Findings:", "IMPRESSION -", "  impression:"), or alone on its line;
- inline after a sentence end (``.``, ``!``, ``?``, ``;``), in any case: "Chest, two views. Findings: ...";
- inline anywhere when capitalised: "FINDINGS: heart normal IMPRESSION: normal chest", "... hilar nodes are
  present Impression: No active disease." (real IU reports end sentences without a full stop).

"The impression: is not a header here" (lower case, mid-sentence) is no heading. Sub-headings that are not in the
list ("LUNGS:", "HEART:") stay inside their section, as in MIMIC-CXR reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Canonical section names and the spellings read as each (a heading is matched case-insensitively at a line
#: start or after a sentence end, capitalised anywhere).
HEADINGS: dict[str, tuple[str, ...]] = {
    "FINDINGS": ("FINDINGS", "FINDING"),
    "IMPRESSION": ("IMPRESSION", "IMPRESSIONS", "CONCLUSION", "CONCLUSIONS", "OPINION"),
    "INDICATION": ("INDICATION", "INDICATIONS", "REASON FOR EXAM", "REASON FOR EXAMINATION"),
    "HISTORY": ("HISTORY", "CLINICAL HISTORY", "CLINICAL INFORMATION"),
    "COMPARISON": ("COMPARISON", "COMPARISONS"),
    "TECHNIQUE": ("TECHNIQUE", "PROCEDURE"),
    "EXAMINATION": ("EXAMINATION", "EXAM"),
    "RECOMMENDATION": ("RECOMMENDATION", "RECOMMENDATIONS"),
    "NOTIFICATION": ("NOTIFICATION",),
    "ADDENDUM": ("ADDENDUM",),
    "WET READ": ("WET READ",),
}
_CANONICAL = {spelling: name for name, spellings in HEADINGS.items() for spelling in spellings}
_NAMES = "|".join(s.replace(" ", r"[ \t]+") for s in sorted(_CANONICAL, key=len, reverse=True))
_CAPITALISED = "|".join(f"(?-i:{s[0]})" + s[1:].replace(" ", r"[ \t]+")
                        for s in sorted(_CANONICAL, key=len, reverse=True))  # "Impression", "IMPRESSION"
_MARK = r"[ \t]*(?::|[-\u2013\u2014](?=[ \t]|$))[ \t]*"  # ":" or a dash followed by a space (not "X-ray")
_HEADING = re.compile(
    rf"(?:^|(?<=[.!?;]))[ \t]*(?P<any>{_NAMES}){_MARK}"  # any case, at a line start or after a sentence end
    rf"|^[ \t]*(?P<alone>{_NAMES})[ \t]*$"  # any case, alone on its line
    rf"|(?<![A-Za-z])(?P<caps>{_CAPITALISED}){_MARK}",  # capitalised, anywhere
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class ReportSections:
    """The sections of one report.

    Attributes:
        findings: text of the FINDINGS section; the whole text when the report has no heading at all.
        impression: text of the IMPRESSION (or CONCLUSION...) section, "" when absent or empty.
        has_headers: whether any heading was found.
        sections: canonical name (:data:`HEADINGS`) -> text of every heading found, in order of first appearance
            (a heading given twice: its texts joined by a space); empty sections are kept as "".
        preamble: text before the first heading ("" without headings): e.g. "Chest, two views."
    """

    findings: str
    impression: str
    has_headers: bool
    sections: dict[str, str] = field(default_factory=dict)
    preamble: str = ""


def split_sections(text: str) -> ReportSections:
    """Split ``text`` at its section headings (see the module docstring for what counts as one).

    A report without any heading is taken to be all findings (templates and drafts are often written that way);
    section texts are stripped, line breaks inside a section are kept.

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"report text must be str, got {type(text).__name__}")
    matches = list(_HEADING.finditer(text))
    if not matches:
        return ReportSections(findings=text.strip(), impression="", has_headers=False)
    sections: dict[str, str] = {}
    for match, following in zip(matches, [*matches[1:], None]):
        spelling = " ".join((match.group("any") or match.group("alone") or match.group("caps")).upper().split())
        name = _CANONICAL[spelling]
        body = text[match.end():following.start() if following else len(text)].strip()
        sections[name] = f"{sections[name]} {body}".strip() if sections.get(name) else body
    return ReportSections(findings=sections.get("FINDINGS", ""), impression=sections.get("IMPRESSION", ""),
                          has_headers=True, sections=sections, preamble=text[:matches[0].start()].strip())
