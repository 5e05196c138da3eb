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
arms). A negative ``V`` (possible by chance when the reader and case terms are tiny) is replaced by
``max(V_reader, V_case)`` (CGM 2011, section 2.3, recommend a conservative fix). The interval is
``estimate +- t(df) * sqrt(V)`` with ``df = min(R, C) - 1`` for R readers and C cases: CGM 2011 (section 4) advise
t quantiles with G - 1 degrees of freedom for G clusters of the scarcer dimension, which for a 10-reader study is 9.

Main effects removed before the one-way terms (for statistics that offer it, ``adjusted``: the arm estimates of a
reader study where every reader reads every case). With the arm rotated, a reader's cases in one arm are not its
cases in another, so the reader clusters of an arm difference carry the case effects, and the case clusters carry
the reader effects. CGM's subtraction removes them only on average: the terms stay noisy (for the peer-discrepancy
difference the case effects in V_reader were larger than the whole variance). As in the analysis of variance of a
crossed design (the method of moments of the Obuchowski-Rockette / Dorfman-Berbaum-Metz MRMC tradition; Hillis,
Berbaum & Metz 2008, "Recent developments in the Dorfman-Berbaum-Metz procedure for multireader ROC study
analysis", Acad. Radiol. 15(5)), each term is computed on values from which the main effects of the other
dimension are removed (:func:`remove_main_effects`, centred on the arm means):

- V_reader on values less the case effects. Estimated from all readers of a case, the case effect takes in
  1/R of the reading's own residual and reader x arm deviation (and, because the rotation ties a case's arm to the
  reader's, part of the other readers' reader x arm deviations), which shrinks the term by about (R - 2) / (R - 1);
  estimated from the case's other readers, after their reader means, it adds the other readers' deviations and
  inflates the term by about R / (R - 1). V_reader is the mean of the two (first-order biases cancel).
- V_case on values less the reader effects (each from the reader's C readings, all arms).
- V_reading on values less both, times (N - 1) / (N - R - C + 1): the residual degrees of freedom of the additive
  two-way fit.

For a linear statistic under an additive crossed model with reader, case, reader x arm and residual variance the
expectation of ``V`` computed this way is within 2% of the true variance of an arm mean or difference at
10 readers x 75 cases (case x arm variance is under-counted by about 10%); the terms have about R - 1 degrees of
freedom, as the t quantile assumes.

Estimates that describe the readers at hand rather than the population of readers (time saved by the top-k%
readers ranked by template use) treat readers as fixed: ``V = V_case`` with ``C - 1`` df. With a single reader every estimate is for that
reader (fixed).

Not estimable (NaN bounds and a ``note`` saying why): fewer than 2 cases, or a zero (or missing) variance. A
statistician signs no zero-width interval: it comes from too little data (one reader whose readings give no
variance; an estimate resting on a single case or, readers random, a single reader, as with one reading per arm;
main effects fitted to about as many readings, e.g. 2 readers x 2 cases) or from values that do not vary at all (a
share of 0% or 100%, a constant answer), where a Wald interval says nothing. A single reader's interval with a
positive variance (one reader judging 58 cases) stays, for that reader (fixed).

Log scale (``log_scale``): a positive mean of skewed counts resting on a few tens of readings (the discrepancy by
writing-time interval) has its interval on the log scale, ``estimate * exp(+- t(df) * se / estimate)`` (the delta
method; the usual interval for a rate, e.g. Rothman, Greenland & Lash 2008, Modern Epidemiology, 3rd ed., ch. 14):
the Wald interval of such a mean misses mostly on one side (its estimate and its se are low together).

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
    "note": "empty for an interval; 'not estimable: <why>' where the bounds are NaN (module docstring)",
}

#: Start of ``note`` where an interval is not estimable; :func:`not_estimable_reason` gives the short reason.
NOT_ESTIMABLE = "not estimable: "
_NEEDS = "; needs >= 2 readers and >= 2 cases"


def not_estimable_reason(note: object) -> str:
    """The short reason of a ``note`` of :func:`crossed_intervals` (e.g. ``"1 reader"``); "" for an interval (empty,
    missing or NaN note)."""
    if not isinstance(note, str) or not note.startswith(NOT_ESTIMABLE):
        return ""
    return note[len(NOT_ESTIMABLE):].split(";")[0]

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
    adjusted: Callable[[str], Statistic] | None = None,
    log_scale: np.ndarray | None = None,
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
        adjusted: ``adjusted(kind)`` -> the same statistic on values less estimated main effects, ``kind`` in
            :data:`ADJUSTMENTS` (module docstring); None computes every term on the values as they are (plain
            CGM 2011, for designs where not every reader reads every case, such as blinded pairs).
        log_scale: (K,) bool, True where the interval is taken on the log scale (positive estimates only; a zero or
            negative estimate keeps the Wald interval); default all False.
        n_resamples: resamples of each one-way bootstrap (3 x ``n_resamples`` evaluations in all, 4 x with
            ``adjusted``).
        seed: seed of the ``numpy.random.default_rng`` generator.
        level: confidence level.

    Returns:
        DataFrame indexed by ``names`` with the columns of :data:`INTERVAL_COLUMNS`; ``ci_low`` / ``ci_high`` NaN
        and ``note`` "not estimable: <why>" where the data cannot give an interval (module docstring).

    Raises:
        ValueError: no readings, mismatched lengths, ``n_resamples`` < 2, or ``readers_fixed`` or ``log_scale`` of the
            wrong length.
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
    logged = np.zeros(len(names), bool) if log_scale is None else np.asarray(log_scale, bool)
    if logged.shape != (len(names),):
        raise ValueError(f"log_scale has shape {logged.shape}, expected ({len(names)},)")
    estimate = np.asarray(statistic(np.ones((1, n)), np.ones((1, n_readers)), np.ones((1, n_cases))), float)[0]
    rng = np.random.default_rng(seed)

    def bootstrap(n_units: int, evaluate) -> tuple[np.ndarray, np.ndarray]:
        """Variance over resamples of ``n_units`` clusters times G / (G - 1); resamples in chunks to bound
        memory (B x N floats)."""
        draws = []
        for start in range(0, n_resamples, _CHUNK):
            size = min(_CHUNK, n_resamples - start)
            counts = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=size).astype(float)
            draws.append(np.asarray(evaluate(counts), float))
        variance, valid = _variance(np.concatenate(draws))
        return variance * n_units / max(n_units - 1, 1), valid

    ones_r, ones_c = (lambda b: np.ones((b, n_readers))), (lambda b: np.ones((b, n_cases)))
    if adjusted is None:
        by_case = by_reading = statistic
        v_reader, k_reader = bootstrap(n_readers, lambda m: statistic(m[:, reader_codes], m, ones_c(len(m))))
    else:
        by_case, by_reading = adjusted("readers"), adjusted("readers_and_cases")
        terms = [bootstrap(n_readers, lambda m, s=adjusted(kind): s(m[:, reader_codes], m, ones_c(len(m))))
                 for kind in ("cases", "cases_other_readers")]
        v_reader, k_reader = (terms[0][0] + terms[1][0]) / 2, np.minimum(terms[0][1], terms[1][1])
    v_case, k_case = bootstrap(n_cases, lambda m: by_case(m[:, case_codes], ones_r(len(m)), m))
    v_reading, k_reading = bootstrap(n, lambda m: by_reading(m, ones_r(len(m)), ones_c(len(m))))
    if adjusted is not None:
        # the reading term of doubly adjusted values: their residual variance has N - R - C + 1 degrees of freedom
        v_reading = v_reading * (n - 1) / max(n - n_readers - n_cases + 1, 1)
    fixed = fixed | (n_readers < 2)
    two_way = v_reader + v_case - v_reading
    two_way = np.where(two_way > 0, two_way, np.fmax(v_reader, v_case))
    variance = np.where(fixed, v_case, two_way)
    df = np.where(fixed, n_cases - 1.0, min(n_readers, n_cases) - 1.0)
    note = _notes(reader_codes, case_codes, statistic, estimate, variance, n_readers, n_cases, fixed)
    variance, df = np.where(note == "", variance, np.nan), np.where(note == "", df, np.nan)
    se = np.sqrt(variance)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # log bounds of discarded entries may overflow
        quantile = stats.t.ppf(0.5 + level / 2, np.where(df >= 1, df, np.nan))
        low, high = estimate - quantile * se, estimate + quantile * se
        # log scale (delta method: se of log(estimate) = se / estimate) for positive estimates
        log_half = quantile * se / estimate
        on_log = logged & (estimate > 0)
        low = np.where(on_log, estimate * np.exp(-log_half), low)
        high = np.where(on_log, estimate * np.exp(log_half), high)
    return pd.DataFrame({
        "estimate": estimate, "se": se, "ci_low": low, "ci_high": high, "df": df,
        "readers": np.where(fixed, "fixed", "random"), "var_readers": v_reader, "var_cases": v_case,
        "var_readings": v_reading,
        "n_resamples": np.where(fixed, k_case, np.minimum(k_case, k_reading)),
        "note": note,
    }, index=names)


def _notes(reader_codes: np.ndarray, case_codes: np.ndarray, statistic: Statistic, estimate: np.ndarray,
           variance: np.ndarray, n_readers: int, n_cases: int, fixed: np.ndarray) -> np.ndarray:
    """(K,) object: "" where the interval is estimable, else "not estimable: <why>" (module docstring). Draws no
    random numbers; the leave-one-out evaluations (to name why) run only when some variance is zero or missing."""
    note = np.full(estimate.shape, "", dtype=object)
    note[np.isnan(estimate)] = NOT_ESTIMABLE + "no readings"
    open_ = note == ""
    if n_cases < 2:
        note[open_] = NOT_ESTIMABLE + f"{n_cases} case" + _NEEDS
        return note
    with np.errstate(invalid="ignore"):
        degenerate = open_ & ~(variance > 1e-12 * np.fmax(1.0, estimate ** 2))
    if not degenerate.any():
        return note
    if n_readers < 2:
        note[degenerate] = NOT_ESTIMABLE + f"{n_readers} reader" + _NEEDS
        return note
    # leave one case (one reader) out: an estimate resting on that one alone has none without it
    without_case = np.asarray(statistic(1.0 - np.eye(n_cases)[:, case_codes], np.ones((n_cases, n_readers)),
                                        1.0 - np.eye(n_cases)), float)
    without_reader = np.asarray(statistic(1.0 - np.eye(n_readers)[:, reader_codes], 1.0 - np.eye(n_readers),
                                          np.ones((n_readers, n_cases))), float)
    on_case, on_reader = np.isnan(without_case).any(axis=0), np.isnan(without_reader).any(axis=0) & ~fixed
    note[degenerate] = NOT_ESTIMABLE + "zero variance: values alike or too few readings" + _NEEDS
    note[degenerate & on_reader] = NOT_ESTIMABLE + "1 reader in this estimate" + _NEEDS
    note[degenerate & on_case] = NOT_ESTIMABLE + "1 case in this estimate" + _NEEDS
    return note

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


#: adjustments a statistic offers to :func:`crossed_intervals` (``adjusted(kind)``): the values less the estimated
#: case effects, less the case effects estimated from the other readers of the case, less the reader effects, less both
ADJUSTMENTS = ("cases", "cases_other_readers", "readers", "readers_and_cases")


def remove_main_effects(values: np.ndarray, strata: np.ndarray, reader_codes: np.ndarray, case_codes: np.ndarray,
                        kind: str) -> np.ndarray:
    """``values`` less estimated reader and/or case main effects of an additive crossed reader x case model.

    Every column is centred on its stratum (arm) mean. ``"readers"``: a reader's effect is the mean of its centred
    values. ``"cases"``: a case's effect is the mean of its centred values. ``"cases_other_readers"``: the case
    effect of a reading is the mean over the case's other readings of the values centred on stratum and reader
    means (so that the reading's own reader, its reader x arm deviation and its own residual are not in it).
    ``"readers_and_cases"``: both the reader and the case effects are removed. The stratum means stay. NaN
    values are left out of the means and stay NaN; a reader or case without values has effect 0.

    Args:
        values: (N,) or (N, M) float.
        strata: (N,) int stratum (arm) of each reading, >= 0.
        reader_codes / case_codes: (N,) int codes 0..R-1 / 0..C-1.
        kind: one of :data:`ADJUSTMENTS`.

    Returns:
        float array of the shape of ``values``.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in ADJUSTMENTS:
        raise ValueError(f"kind must be one of {ADJUSTMENTS}; got {kind!r}")
    values = np.asarray(values, float)
    flat = values.ndim == 1
    matrix = values.reshape(len(values), -1)
    ones = np.ones((1, len(matrix)))
    centred = matrix - grouped_means(ones, strata, matrix, int(strata.max()) + 1)[0][strata]
    n_readers, n_cases = int(reader_codes.max()) + 1, int(case_codes.max()) + 1
    reader_effect = np.nan_to_num(grouped_means(ones, reader_codes, centred, n_readers)[0])[reader_codes]
    if kind == "readers":
        out = matrix - reader_effect
    elif kind == "cases_other_readers":
        within = centred - reader_effect
        ok = ~np.isnan(within)
        member = np.zeros((len(matrix), n_cases))
        member[np.arange(len(matrix)), case_codes] = 1.0
        sums = (member.T @ np.where(ok, within, 0.0))[case_codes] - np.where(ok, within, 0.0)
        counts = (member.T @ ok.astype(float))[case_codes] - ok
        with np.errstate(invalid="ignore", divide="ignore"):
            out = matrix - np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), 0.0)
    else:
        case_effect = np.nan_to_num(grouped_means(ones, case_codes, centred, n_cases)[0])[case_codes]
        out = matrix - case_effect - (reader_effect if kind == "readers_and_cases" else 0.0)
    return out[:, 0] if flat else out
