"""What an analysis step left out and why: every exclusion becomes a :class:`Skipped` record that ends up in
``skipped.csv`` and the HTML report, so no number is computed on silently dropped data."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


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
    """Submitted readings with a non-empty final report and a non-negative active time.

    Args:
        readings: frame with the columns of :data:`analysis.loaders.READING_COLUMNS`.

    Returns:
        (the usable rows, one :class:`Skipped` per other row with the reason).
    """
    skipped = []
    keep = []
    for row in readings.itertuples():
        if row.status != "submitted":
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
