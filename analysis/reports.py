"""Report text structure: split a free-text radiology report into findings and impression sections and the
findings section into numbered lines (one sentence per line), as FineRadScore numbers the candidate's lines
(Huang et al., arXiv 2405.20613; paper section 2.4 compares the "findings" sections of final reports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(
    r"(?:^|(?<=[.!?;]))[ \t]*(?P<name>findings|impression|conclusions?|comparison|indications?|clinical history|"
    r"history|technique|examination|exam)[ \t]*:[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class ReportSections:
    """The sections of one report.

    Attributes:
        findings: text of the FINDINGS section; the whole text when the report has no section headers.
        impression: text of the IMPRESSION (or CONCLUSION) section, "" when absent.
        has_headers: whether any known section header was found.
    """

    findings: str
    impression: str
    has_headers: bool


def split_sections(text: str) -> ReportSections:
    """Split ``text`` at headers such as ``FINDINGS:`` and ``IMPRESSION:`` (case-insensitive; at a line start
    or inline after a sentence end, as in "Chest, two views. FINDINGS: ... IMPRESSION: ...").

    A report without any header is taken to be all findings (templates and drafts in this study are often
    written that way). Text before the first header is ignored when headers exist, as are other sections
    (comparison, indication, technique).

    Raises:
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"report text must be str, got {type(text).__name__}")
    matches = list(_HEADER.finditer(text))
    if not matches:
        return ReportSections(findings=text.strip(), impression="", has_headers=False)
    parts: dict[str, str] = {}
    for match, following in zip(matches, matches[1:] + [None]):
        end = following.start() if following else len(text)
        name = match.group("name").lower()
        name = {"conclusion": "impression", "conclusions": "impression", "indications": "indication",
                "clinical history": "history", "exam": "examination"}.get(name, name)
        parts[name] = (parts.get(name, "") + " " + text[match.end() : end]).strip()
    return ReportSections(
        findings=parts.get("findings", ""), impression=parts.get("impression", ""), has_headers=True
    )


def findings_lines(text: str) -> list[str]:
    """The lines a discrepancy judge compares: the FINDINGS section of ``text`` as a list of non-empty sentences
    (line 1 is element 0); the IMPRESSION's sentences when the report has headers but an empty or missing
    FINDINGS section (an IMPRESSION-only report is read, not taken for an empty report that would miss every
    peer's findings).

    Raises:
        TypeError: ``text`` is not a string.
    """
    sections = split_sections(text)
    return [line.strip() for line in _SENTENCE_END.split(sections.findings or sections.impression)
            if line and line.strip()]


def numbered(lines: list[str]) -> str:
    """Lines prefixed ``1. ``, ``2. ``... one per line, as shown to a FineRadScore judge."""
    return "\n".join(f"{number}. {line}" for number, line in enumerate(lines, start=1))
