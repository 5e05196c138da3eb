"""Reporting efficiency (paper section 2.4, Fig. 5c/e): active time per case by arm and reader, time saved
per 100 studies against the reference arm (the normal template), the same for the top-k% readers ranked by
template use, and peer discrepancy by writing-time interval.

All functions take the per-reading table built by :mod:`analysis.pipeline` (usable readings with
``reader``, ``case``, ``arm``, ``active_seconds``, ``template_use`` and, where judged, ``peer_discrepancy``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.skipped import Skipped

TOP_PERCENTS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
INTERVAL_EDGES_MINUTES = (0.0, 5.0, 10.0, math.inf)

READER_ARM_COLUMNS: dict[str, str] = {
    "reader": "reader",
    "arm": "Arm.code",
    "n_cases": "usable readings of this reader in this arm",
    "mean_seconds": "mean active seconds per case",
    "reference_mean_seconds": "the reader's mean active seconds per case in the reference arm",
    "saved_minutes_per_100": "(reference - arm) mean seconds x 100 / 60: minutes saved per 100 studies",
    "template_use": "mean draft-to-final similarity of this reader in this arm",
}
STRATIFIED_COLUMNS: dict[str, str] = {
    "arm": "Arm.code (not the reference arm)",
    "top_percent": "readers in the top k% by template use in this arm (ceil(k% x readers), at least 1)",
    "n_readers": "readers in the stratum",
    "saved_minutes_per_100": "mean over the stratum's readers of minutes saved per 100 studies",
}
INTERVAL_COLUMNS: dict[str, str] = {
    "arm": "Arm.code",
    "interval": "writing-time interval, minutes, [low, high)",
    "n_readings": "readings with a peer discrepancy in the interval",
    "mean_peer_discrepancy": "mean urgent + emergent corrections per reading against its peers",
}


def reader_arm_table(frame: pd.DataFrame, reference_arm: str) -> pd.DataFrame:
    """Per reader x arm: cases, mean time, time saved per 100 studies against ``reference_arm``, template use.

    ``saved_minutes_per_100`` is NaN where the reader has no reading in the reference arm (see
    :func:`missing_reader_arms`). Columns: :data:`READER_ARM_COLUMNS`.
    """
    table = (frame.groupby(["reader", "arm"], sort=True)
             .agg(n_cases=("active_seconds", "size"), mean_seconds=("active_seconds", "mean"),
                  template_use=("template_use", "mean"))
             .reset_index())
    reference = table.loc[table["arm"] == reference_arm].set_index("reader")["mean_seconds"]
    table["reference_mean_seconds"] = table["reader"].map(reference)
    table["saved_minutes_per_100"] = (table["reference_mean_seconds"] - table["mean_seconds"]) * 100 / 60
    return table[list(READER_ARM_COLUMNS)]


def missing_reader_arms(frame: pd.DataFrame, arms: tuple[str, ...]) -> list[Skipped]:
    """One :class:`Skipped` per reader with no usable reading in an arm of the study."""
    present = set(zip(frame["reader"], frame["arm"]))
    return [Skipped("efficiency", f"reader {reader} x arm {arm}",
                    "no usable reading in this arm: no time saved or template use for it")
            for reader in sorted(frame["reader"].unique()) for arm in arms if (reader, arm) not in present]


def stratified_time_saved(
    reader_arm: pd.DataFrame, reference_arm: str, top_percents: tuple[int, ...] = TOP_PERCENTS
) -> pd.DataFrame:
    """Minutes saved per 100 studies for the top-k% readers ranked by their template use in each arm
    (Fig. 5e). Readers without a reading in both the arm and the reference arm are not ranked.

    Columns: :data:`STRATIFIED_COLUMNS`.
    """
    rows = []
    ranked = reader_arm.dropna(subset=["saved_minutes_per_100", "template_use"])
    for arm, group in ranked[ranked["arm"] != reference_arm].groupby("arm", sort=True):
        saved = group.sort_values(["template_use", "reader"], ascending=[False, True])[
            "saved_minutes_per_100"].to_numpy()
        cumulative = np.cumsum(saved)
        for k in top_percents:
            n = max(1, math.ceil(k * len(saved) / 100))
            rows.append({"arm": arm, "top_percent": k, "n_readers": n,
                         "saved_minutes_per_100": cumulative[n - 1] / n})
    return pd.DataFrame(rows, columns=list(STRATIFIED_COLUMNS))


def interval_labels(edges_minutes: tuple[float, ...] = INTERVAL_EDGES_MINUTES) -> list[str]:
    """``[lo, hi)`` labels of the writing-time intervals between consecutive ``edges_minutes``."""
    return [f"[{lo:g}, {hi:g})" for lo, hi in zip(edges_minutes, edges_minutes[1:])]


def discrepancy_by_interval(
    frame: pd.DataFrame, edges_minutes: tuple[float, ...] = INTERVAL_EDGES_MINUTES
) -> pd.DataFrame:
    """Mean peer discrepancy by arm and writing-time interval (Fig. 5c: < 5 min, 5-10 min, ...).

    Readings without a ``peer_discrepancy`` are left out here (they are listed by the consistency step).
    Columns: :data:`INTERVAL_COLUMNS`; empty intervals are omitted.
    """
    judged = frame.dropna(subset=["peer_discrepancy"])
    labels = interval_labels(edges_minutes)
    interval = pd.cut(judged["active_seconds"] / 60, list(edges_minutes), right=False, labels=labels)
    table = (judged.assign(interval=interval)
             .groupby(["arm", "interval"], sort=True, observed=True)["peer_discrepancy"]
             .agg(n_readings="size", mean_peer_discrepancy="mean")
             .reset_index())
    table["interval"] = table["interval"].astype(str)
    return table[list(INTERVAL_COLUMNS)]
