"""The study's estimates as one vectorised statistic, so that :func:`analysis.statistics.cluster_bootstrap`
can recompute all of them 1,000 times quickly (paper section 4.6):

- ``("mean", metric, arm, 0)``: mean of a per-reading metric in an arm (NaN values left out);
- ``("difference", metric, arm, 0)``: that mean minus the reference arm's mean;
- ``("saved", "saved_minutes_per_100", arm, k)``: minutes saved per 100 studies against the reference arm,
  averaged over the top-k% readers ranked by their template use in ``arm``, the same quantity as
  :func:`analysis.efficiency.stratified_time_saved`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.efficiency import TOP_PERCENTS


class ArmEstimates:
    """Callable ``(rows, readers) -> (K,) float`` over a per-reading frame.

    Args:
        frame: per-reading frame with ``arm``, ``active_seconds``, ``template_use`` and every metric column.
        metrics: per-reading columns to average by arm.
        arms: arm codes (order of the output).
        reference_arm: arm the differences and time saved are computed against.
        top_percents: strata of readers by template use.

    Attributes:
        names: MultiIndex (kind, metric, arm, top_percent) of the outputs.
    """

    def __init__(self, frame: pd.DataFrame, metrics: list[str], arms: list[str], reference_arm: str,
                 top_percents: tuple[int, ...] = TOP_PERCENTS):
        self.arms = list(arms)
        self.ref = self.arms.index(reference_arm)
        self.others = [i for i in range(len(self.arms)) if i != self.ref]
        self.top_percents = top_percents
        self.arm = frame["arm"].map({a: i for i, a in enumerate(self.arms)}).to_numpy()
        self.values = frame[metrics].to_numpy(dtype=float)
        self.seconds = frame["active_seconds"].to_numpy(dtype=float)
        self.use = frame["template_use"].to_numpy(dtype=float)
        names = [("mean", m, a, 0) for m in metrics for a in self.arms]
        names += [("difference", m, self.arms[i], 0) for m in metrics for i in self.others]
        names += [("saved", "saved_minutes_per_100", self.arms[i], k) for i in self.others for k in top_percents]
        self.names = pd.MultiIndex.from_tuples(names, names=["kind", "metric", "arm", "top_percent"])

    def _arm_means(self, arm: np.ndarray, values: np.ndarray) -> np.ndarray:
        n_arms = len(self.arms)
        means = np.empty((n_arms, values.shape[1]))
        for j in range(values.shape[1]):
            ok = ~np.isnan(values[:, j])
            counts = np.bincount(arm[ok], minlength=n_arms)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[:, j] = np.bincount(arm[ok], values[ok, j], minlength=n_arms) / counts
        return means

    def __call__(self, rows: np.ndarray, readers: np.ndarray) -> np.ndarray:
        arm = self.arm[rows]
        means = self._arm_means(arm, self.values[rows])  # (arms, metrics)
        out = [means.T.ravel(), (means[self.others] - means[self.ref]).T.ravel()]
        n_arms, n_readers = len(self.arms), int(readers.max()) + 1
        key = readers * n_arms + arm
        counts = np.bincount(key, minlength=n_readers * n_arms).reshape(n_readers, n_arms)
        with np.errstate(invalid="ignore", divide="ignore"):
            seconds = np.bincount(key, self.seconds[rows], minlength=n_readers * n_arms).reshape(
                n_readers, n_arms) / counts
            use = np.bincount(key, self.use[rows], minlength=n_readers * n_arms).reshape(n_readers, n_arms) / counts
        saved = (seconds[:, [self.ref]] - seconds) * 100 / 60
        for i in self.others:
            valid = np.flatnonzero((counts[:, i] > 0) & (counts[:, self.ref] > 0))
            strata = np.full(len(self.top_percents), np.nan)
            if valid.size:
                order = valid[np.lexsort((valid, -use[valid, i]))]
                cumulative = np.cumsum(saved[order, i])
                for s, k in enumerate(self.top_percents):
                    n = max(1, math.ceil(k * valid.size / 100))
                    strata[s] = cumulative[n - 1] / n
            out.append(strata)
        return np.concatenate(out)
