"""What an analysis step left out and why: every exclusion becomes a :class:`Skipped` record that ends up in
``skipped.csv`` and the HTML report, so no number is computed on silently dropped data."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


#: reason of every practice reading left out (paper section 4.3: the practice cases did not count)
PRACTICE_REASON = "practice case: read for practice, never counted"


@dataclass(frozen=True)
class Skipped:
    """One left-out item.

    Attributes:
        step: analysis step (``readings``, ``consistency``, ``efficiency``, ``experience``, ``statistics``...).
        item: what was left out, e.g. ``reader r3 x case c12 (model)``.
        reason: why.
    """

    step: str
    item: str
    reason: str


def reading_label(row) -> str:
    """``reader R x case C (arm)`` for a readings row."""
    return f"reader {row.reader} x case {row.case} ({row.arm})"


def usable_readings(readings: pd.DataFrame) -> tuple[pd.DataFrame, list[Skipped]]:
    """Counted (not practice) submitted readings with a non-empty final report and a non-negative active time.

    Args:
        readings: frame with the columns of :data:`analysis.loaders.READING_COLUMNS`.

    Returns:
        (the usable rows, one :class:`Skipped` per other row with the reason).
    """
    skipped = []
    keep = []
    for row in readings.itertuples():
        practice = getattr(row, "practice", False)
        if pd.notna(practice) and bool(practice):
            reason = PRACTICE_REASON
        elif row.status != "submitted":
            reason = f"not submitted (status {row.status})"
        elif not isinstance(row.final_text, str) or not row.final_text.strip():
            reason = "submitted without a final report text"
        elif pd.isna(row.active_seconds) or row.active_seconds < 0:
            reason = f"no valid active time ({row.active_seconds})"
        else:
            keep.append(True)
            continue
        keep.append(False)
        skipped.append(Skipped("readings", reading_label(row), reason))
    return readings[keep].reset_index(drop=True), skipped


def practice_reads_left_out(skipped: list[Skipped]) -> int:
    """How many practice readings :func:`usable_readings` left out."""
    return sum(s.step == "readings" and s.reason == PRACTICE_REASON for s in skipped)
