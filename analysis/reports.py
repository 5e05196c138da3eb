"""Report text structure for the judges: the findings section of a free-text radiology report (sections parsed by
:func:`studyapp.report_sections.split_sections`, the one parser the SR export and the engine share) as numbered
lines (one sentence per line), as FineRadScore numbers the candidate's lines (Huang et al., arXiv 2405.20613; paper section 2.4 compares the "findings" sections of final reports).
"""

from __future__ import annotations

import re

from studyapp.report_sections import split_sections

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


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
