"""What an analysis step left out and why: every exclusion becomes a :class:`Skipped` record that ends up in
``skipped.csv`` and the HTML report, so no number is computed on silently dropped data."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


#: start of every practice entry's reason (paper section 4.3: the practice cases did not count)
PRACTICE_PREFIX = "practice case: "
#: reason of every practice reading left out
PRACTICE_REASON = f"{PRACTICE_PREFIX}read for practice, never counted"


@dataclass(frozen=True)
class Skipped:
    """One left-out item.

    Attributes:
        step: analysis step (``readings``, ``consistency``, ``efficiency``, ``experience``, ``statistics``...).
        item: what was left out, e.g. ``reader r3 x case c12 (model)``.
        reason: why.
        count: rows the entry stands for (1 for a reading; the number of judgements for a set's practice
            judgements, :func:`practice_judgements`).
    """

    step: str
    item: str
    reason: str
    count: int = 1


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


def practice_judgements(item: str, n: int) -> Skipped:
    """The entry for ``n`` blinded comparison judgements of practice cases (``Case.is_practice``, in a set created
    with "include practice cases") left out of the preference rates of ``item`` (e.g. ``set pilot``): like practice
    reads, they never count.

    Raises:
        ValueError: ``n`` < 1 (nothing left out needs no entry).
    """
    if n < 1:
        raise ValueError(f"a practice judgements entry needs at least one judgement; got {n}")
    return Skipped("preferences", item, f"{PRACTICE_PREFIX}{n} judgement(s) left out, never counted", count=n)


def practice_judgements_left_out(skipped: list[Skipped]) -> int:
    """How many practice judgements the preference rates left out (the counts of :func:`practice_judgements`)."""
    return sum(s.count for s in skipped if s.step == "preferences" and s.reason.startswith(PRACTICE_PREFIX))
