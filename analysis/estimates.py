"""The reader study's estimates as one statistic vectorised over resamples, so that
:func:`analysis.intervals.crossed_intervals` can recompute all of them for thousands of resamples with a few matrix
products (paper sections 2.4, 4.3, 4.6):

- ``("mean", metric, arm, 0)``: mean of a per-reading metric in an arm (NaN values left out);
- ``("difference", metric, arm, 0)``: that mean minus the reference arm's mean;
- ``("saved", "saved_minutes_per_100", arm, k)``: minutes saved per 100 studies against the reference arm,
  averaged over the top-k% readers ranked by their template use in ``arm``, the same quantity as
  :func:`analysis.efficiency.stratified_time_saved`. For k < 100 the stratum's readers are fixed (the ranking on the
  study's data; the estimate describes those readers), for k = 100 (every reader) readers are random;
- ``("interval", "peer_discrepancy", arm, "[lo, hi)")``: mean peer discrepancy of the arm's readings whose writing
  time falls in the interval (Fig. 5c), intervals with at least one reading only.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd

from analysis.efficiency import INTERVAL_EDGES_MINUTES, TOP_PERCENTS, interval_labels
from analysis.intervals import (LEVEL, N_RESAMPLES, crossed_intervals, grouped_means,
                                remove_main_effects)


class ArmEstimates:
    """Statistic ``(reading_weights (B, N), reader_weights (B, R), case_weights (B, C)) -> (B, K)`` over a
    per-reading frame, for :func:`analysis.intervals.crossed_intervals` (pass :meth:`without_main_effects` as its
    ``adjusted``).

    Args:
        frame: per-reading frame with ``reader``, ``case``, ``arm``, ``active_seconds`` (s), ``template_use`` and every
            metric column.
        metrics: per-reading columns to average by arm.
        arms: arm codes in design order (order of the outputs).
        reference_arm: arm the differences and time saved are computed against.
        top_percents: strata of readers by template use.
        interval_edges_minutes: writing-time interval edges for the discrepancy by interval.

    Attributes:
        names: MultiIndex (kind, metric, arm, stratum) of the outputs.
        readers_fixed: (K,) bool, True for the time saved of strata below 100%.
        log_scale: (K,) bool, True for the discrepancy by writing-time interval (a mean of skewed counts over a
            few tens of readings, mostly from a few readers: its interval is taken on the log scale).
        reader_codes: (N,) int, the reader of each row in 0..R-1 (``pd.factorize`` order).
        case_codes: (N,) int, the case of each row in 0..C-1 (``pd.factorize`` order).
        strata: {(arm, k): reader names in the stratum}.
    """

    def __init__(self, frame: pd.DataFrame, metrics: list[str], arms: list[str], reference_arm: str,
                 top_percents: tuple[int, ...] = TOP_PERCENTS,
                 interval_edges_minutes: tuple[float, ...] = INTERVAL_EDGES_MINUTES):
        self.arms = list(arms)
        self.ref = self.arms.index(reference_arm)
        self.others = [i for i in range(len(self.arms)) if i != self.ref]
        self.reader_codes, readers = pd.factorize(frame["reader"])
        self.n_readers = len(readers)
        self.case_codes = pd.factorize(frame["case"])[0]
        self.arm = frame["arm"].map({a: i for i, a in enumerate(self.arms)}).to_numpy()
        self.values = frame[metrics].to_numpy(dtype=float)
        self.reader_arm = self.reader_codes * len(self.arms) + self.arm
        self.per_reader = frame[["active_seconds", "template_use"]].to_numpy(dtype=float)

        full = grouped_means(np.ones((1, len(frame))), self.reader_arm, self.per_reader,
                             self.n_readers * len(self.arms))[0].reshape(self.n_readers, len(self.arms), 2)
        self.valid, self.members, self.strata = {}, {}, {}
        for i in self.others:
            valid = np.flatnonzero(~np.isnan(full[:, i, 0]) & ~np.isnan(full[:, self.ref, 0])
                                   & ~np.isnan(full[:, i, 1]))
            order = valid[np.lexsort((valid, -full[valid, i, 1]))]
            self.valid[i] = valid
            for k in top_percents:
                if order.size:
                    self.members[(i, k)] = order[:max(1, math.ceil(k * order.size / 100))]
                    self.strata[(self.arms[i], k)] = list(readers[self.members[(i, k)]])

        minutes = frame["active_seconds"].to_numpy(dtype=float) / 60
        labels = interval_labels(interval_edges_minutes)
        bins = np.digitize(minutes, interval_edges_minutes[1:-1], right=False)
        judged = ~np.isnan(frame["peer_discrepancy"].to_numpy(float)) if "peer_discrepancy" in frame else None
        self.discrepancy = frame["peer_discrepancy"].to_numpy(float) if judged is not None else None
        self.interval_group = np.where(judged, self.arm * len(labels) + bins, -1) if judged is not None else None
        present = sorted(set(self.interval_group[self.interval_group >= 0])) if judged is not None else []
        self.interval_cells = present
        self.n_intervals = len(labels)

        names = [("mean", m, a, 0) for m in metrics for a in self.arms]
        names += [("difference", m, self.arms[i], 0) for m in metrics for i in self.others]
        self.saved_keys = [(i, k) for i in self.others for k in top_percents if (i, k) in self.members]
        names += [("saved", "saved_minutes_per_100", self.arms[i], k) for i, k in self.saved_keys]
        names += [("interval", "peer_discrepancy", self.arms[g // len(labels)], labels[g % len(labels)])
                  for g in present]
        self.names = pd.MultiIndex.from_tuples(names, names=["kind", "metric", "arm", "stratum"])
        self.readers_fixed = np.array([kind == "saved" and k != 100 for kind, _, _, k in names])
        self.log_scale = np.array([kind == "interval" for kind, _, _, _ in names])

    def without_main_effects(self, kind: str) -> "ArmEstimates":
        """The same statistic on every value column less estimated reader and/or case main effects
        (:func:`analysis.intervals.remove_main_effects` with ``kind``, strata = arms); the strata of readers by
        template use and the writing-time interval of each reading stay those of the study's data.

        Raises:
            ValueError: an unknown ``kind``.
        """
        other = copy.copy(self)
        adjust = lambda v: remove_main_effects(v, self.arm, self.reader_codes, self.case_codes, kind)
        other.values, other.per_reader = adjust(self.values), adjust(self.per_reader)
        if self.discrepancy is not None:
            other.discrepancy = adjust(self.discrepancy)
        return other

    def __call__(self, weights: np.ndarray, reader_weights: np.ndarray, case_weights: np.ndarray) -> np.ndarray:
        n_arms = len(self.arms)
        means = grouped_means(weights, self.arm, self.values, n_arms)  # (B, arms, metrics)
        out = [means.transpose(0, 2, 1).reshape(len(weights), -1),
               (means[:, self.others] - means[:, [self.ref]]).transpose(0, 2, 1).reshape(len(weights), -1)]
        per_reader = grouped_means(weights, self.reader_arm, self.per_reader, self.n_readers * n_arms)
        seconds = per_reader[:, :, 0].reshape(len(weights), self.n_readers, n_arms)
        saved = (seconds[:, :, [self.ref]] - seconds) * 100 / 60  # (B, readers, arms)
        for i, k in self.saved_keys:
            if k == 100:  # every reader: a mean over drawn readers, weighted by how often each was drawn
                values = saved[:, self.valid[i], i]
                w = np.where(np.isnan(values), 0.0, reader_weights[:, self.valid[i]])
                with np.errstate(invalid="ignore", divide="ignore"):
                    out.append((np.nansum(values * w, axis=1) / w.sum(axis=1))[:, None])
            else:
                out.append(saved[:, self.members[(i, k)], i].mean(axis=1)[:, None])
        if self.interval_cells:
            cells = grouped_means(weights, self.interval_group, self.discrepancy, n_arms * self.n_intervals)
            out.append(cells[:, self.interval_cells])
        return np.concatenate(out, axis=1)


def arm_intervals(readings: pd.DataFrame, metrics: list[str], arms: list[str], reference_arm: str,
                  n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL,
                  top_percents: tuple[int, ...] = TOP_PERCENTS) -> tuple[ArmEstimates, pd.DataFrame]:
    """The analysis's intervals of every :class:`ArmEstimates` output: what :func:`analysis.pipeline.analyse_frames`
    reports and what :mod:`analysis.plan` simulates the power of (one place, so that the two stay the same).

    Args:
        readings: per-reading frame as :class:`ArmEstimates` takes it, with ``case``.
        metrics, arms, reference_arm, top_percents: as :class:`ArmEstimates`.
        n_resamples, seed, level: as :func:`analysis.intervals.crossed_intervals`.

    Returns:
        (estimates, intervals): the statistic, and :func:`analysis.intervals.crossed_intervals`'s frame indexed by
        ``estimates.names``.
    """
    estimates = ArmEstimates(readings, metrics, arms, reference_arm, top_percents)
    return estimates, crossed_intervals(estimates.reader_codes, estimates.case_codes, estimates, estimates.names,
                                        readers_fixed=estimates.readers_fixed, n_resamples=n_resamples,
                                        adjusted=estimates.without_main_effects, log_scale=estimates.log_scale,
                                        seed=seed, level=level)
