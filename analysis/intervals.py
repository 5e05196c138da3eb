"""Confidence intervals for estimates from a crossed reader x case design (paper section 4.6 asks for 95% CIs).

Every estimate of the reader study is a smooth function of readings that are crossed: a reader reads many cases and
a case is read by many readers, with the arm rotated so that each reader sees each arm equally often. Resampling
readers and cases at once (the "pigeonhole" two-way bootstrap the paper's percentile method amounts to) counts the
reader x case and residual variance more than once and breaks the arm balance inside each resample, so its
intervals are far too wide in this design (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)).

The primary interval here is a Wald interval with the two-way cluster-robust variance of Cameron, Gelbach and
Miller (2011, "Robust inference with multiway clustering", J. Bus. Econ. Stat. 29(2), eq. 2.11 and section 2.3):

    V = V_reader + V_case - V_reading,

each term the variance of the estimate under a one-way bootstrap that resamples only readers (each with all their
readings), only cases (each with all its readings), or single readings, times G / (G - 1) for G clusters (CGM's
small-sample factor; the bootstrap variance of a mean of G cluster totals is (G - 1) / G of the unbiased one).
Each one-way resample keeps the within-cluster structure of the design (a resampled reader keeps its cases and their
arms), so reader effects cancel in arm differences inside the reader resamples and case effects inside the case
resamples; the subtraction removes the residual variance the two one-way terms both contain. A negative ``V`` (possible by chance when the reader and
case terms are tiny) is replaced by ``max(V_reader, V_case)`` (CGM 2011, section 2.3, recommend a conservative
fix). The interval is ``estimate +- t(df) * sqrt(V)`` with ``df = min(R, C) - 1`` for R readers and C cases: CGM
2011 (section 4) advise t quantiles with G - 1 degrees of freedom for G clusters of the scarcer dimension, which
for a 10-reader study is 9 (the few readers limit how well V_reader is known).

Estimates that describe the readers at hand rather than the population of readers (time saved by the top-k%
readers ranked by template use) treat readers as fixed: ``V = V_case`` with ``C - 1`` df. With a single reader
every estimate is for that reader (fixed); with fewer than two cases no interval is given.

Coverage and width are checked by simulation in ``bench/coverage.py`` (figures in the README).
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

N_RESAMPLES = 1000
LEVEL = 0.95
_CHUNK = 250  # resamples evaluated at once

#: Method text shown in tables and the report.

INTERVAL_COLUMNS: dict[str, str] = {
    "estimate": "estimate on the study's data",
    "se": "standard error, sqrt(V)",
    "ci_low": "95% lower bound: estimate - t(df) x se",
    "ci_high": "95% upper bound: estimate + t(df) x se",
    "df": "degrees of freedom of the t quantile",
    "readers": "'random' (the interval generalises to other readers) or 'fixed' (these readers only)",
    "var_readers": "V_reader: variance over resamples of readers (each with all its readings)",
    "var_cases": "V_case: variance over resamples of cases (each with all its readings)",
    "var_readings": "V_reading: variance over resamples of single readings",
    "n_resamples": "resamples per one-way bootstrap that gave a value (the smallest of the three)",
}

#: ``statistic(reading_weights (B, N), reader_weights (B, R), case_weights (B, C)) -> (B, K)``.
Statistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _variance(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # outputs without a value in any resample give NaN
        return np.nanvar(draws, axis=0, ddof=1), (~np.isnan(draws)).sum(axis=0)


def crossed_intervals(
    reader_codes: np.ndarray,
    case_codes: np.ndarray,
    statistic: Statistic,
    names: pd.Index,
    readers_fixed: np.ndarray | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> pd.DataFrame:
    """Two-way cluster-robust Wald intervals (module docstring) for every output of ``statistic``.

    Args:
        reader_codes: (N,) int, reader of each reading (or judgement), coded 0..R-1.
        case_codes: (N,) int, case of each reading, coded 0..C-1.
        statistic: vectorised over resamples: ``(reading_weights, reader_weights, case_weights) -> (B, K)``
            float, where ``reading_weights`` (B, N) is how often each reading is in resample b,
            ``reader_weights`` (B, R) how often each reader was drawn (1 when readers are not resampled) and
            ``case_weights`` (B, C) likewise for cases. The estimate is its value at all-ones weights (B = 1).
            NaN is allowed (e.g. an arm absent from a resample); such resamples are left out of that output.
        names: (K,) index naming the outputs.
        readers_fixed: (K,) bool, True where the output describes the readers at hand (``V = V_case``);
            default all False.
        n_resamples: resamples of each one-way bootstrap (3 x ``n_resamples`` evaluations in all).
        seed: seed of the ``numpy.random.default_rng`` generator.
        level: confidence level.

    Returns:
        DataFrame indexed by ``names`` with the columns of :data:`INTERVAL_COLUMNS`.

    Raises:
        ValueError: no readings, mismatched lengths, ``n_resamples`` < 2, or ``readers_fixed`` of the wrong length.
    """
    reader_codes, case_codes = np.asarray(reader_codes, dtype=int), np.asarray(case_codes, dtype=int)
    if reader_codes.size == 0 or reader_codes.shape != case_codes.shape:
        raise ValueError(f"need equal, non-empty code arrays; got {reader_codes.shape} and {case_codes.shape}")
    if n_resamples < 2:
        raise ValueError(f"n_resamples={n_resamples} must be >= 2")
    n, n_readers, n_cases = reader_codes.size, int(reader_codes.max()) + 1, int(case_codes.max()) + 1
    fixed = np.zeros(len(names), bool) if readers_fixed is None else np.asarray(readers_fixed, bool)
    if fixed.shape != (len(names),):
        raise ValueError(f"readers_fixed has shape {fixed.shape}, expected ({len(names)},)")
    estimate = np.asarray(statistic(np.ones((1, n)), np.ones((1, n_readers)), np.ones((1, n_cases))), float)[0]
    rng = np.random.default_rng(seed)

    def one_way(n_units: int, expand) -> tuple[np.ndarray, np.ndarray]:
        """Variance over resamples of ``n_units`` clusters; resamples in chunks to bound memory (B x N floats)."""
        draws = []
        for start in range(0, n_resamples, _CHUNK):
            size = min(_CHUNK, n_resamples - start)
            counts = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=size).astype(float)
            draws.append(np.asarray(statistic(*expand(counts)), float))
        return _variance(np.concatenate(draws))

    ones_r, ones_c = (lambda b: np.ones((b, n_readers))), (lambda b: np.ones((b, n_cases)))
    v_reader, k_reader = one_way(n_readers, lambda m: (m[:, reader_codes], m, ones_c(len(m))))
    v_case, k_case = one_way(n_cases, lambda m: (m[:, case_codes], ones_r(len(m)), m))
    v_reading, k_reading = one_way(n, lambda m: (m, ones_r(len(m)), ones_c(len(m))))

    # small-sample factor G / (G - 1) of each one-way term (CGM 2011, eq. 2.11's c_G): the bootstrap variance of
    # a mean of G cluster totals is (G - 1) / G of its unbiased estimate
    v_reader = v_reader * n_readers / max(n_readers - 1, 1)
    v_case = v_case * n_cases / max(n_cases - 1, 1)
    v_reading = v_reading * n / max(n - 1, 1)
    fixed = fixed | (n_readers < 2)
    two_way = v_reader + v_case - v_reading
    two_way = np.where(two_way > 0, two_way, np.fmax(v_reader, v_case))
    variance = np.where(fixed, v_case, two_way)
    df = np.where(fixed, n_cases - 1.0, min(n_readers, n_cases) - 1.0)
    if n_cases < 2:
        variance, df = np.full_like(variance, np.nan), np.full_like(df, np.nan)
    se = np.sqrt(variance)
    with np.errstate(invalid="ignore"):
        half = stats.t.ppf(0.5 + level / 2, np.where(df >= 1, df, np.nan)) * se
    return pd.DataFrame({
        "estimate": estimate, "se": se, "ci_low": estimate - half, "ci_high": estimate + half, "df": df,
        "readers": np.where(fixed, "fixed", "random"), "var_readers": v_reader, "var_cases": v_case,
        "var_readings": v_reading,
        "n_resamples": np.where(fixed, k_case, np.minimum(np.minimum(k_reader, k_case), k_reading)),
    }, index=names)


def grouped_means(weights: np.ndarray, groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Weighted mean of ``values`` per group in every resample; the building block of the vectorised statistics.

    Args:
        weights: (B, N) resample weights of the readings.
        groups: (N,) int group of each reading in 0..n_groups-1, or -1 to leave the reading out.
        values: (N,) or (N, M) float; NaN values are left out of their group's mean.
        n_groups: number of groups G.

    Returns:
        (B, G) or (B, G, M) means; NaN where a group has no weight in a resample.
    """
    values = np.asarray(values, float)
    flat = values.ndim == 1
    values = values.reshape(len(values), -1)
    ok = ~np.isnan(values)
    member = np.zeros((len(groups), n_groups))
    inside = groups >= 0
    member[np.flatnonzero(inside), groups[inside]] = 1.0
    # (B, N) @ (N, G*M): sums and counts of every group x value column in one product each
    sums = weights @ (member[:, :, None] * np.where(ok, values, 0.0)[:, None, :]).reshape(len(groups), -1)
    counts = weights @ (member[:, :, None] * ok[:, None, :]).reshape(len(groups), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums / counts).reshape(weights.shape[0], n_groups, values.shape[1])
    return means[:, :, 0] if flat else means
