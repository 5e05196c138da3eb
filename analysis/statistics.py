"""Confidence intervals and mixed models for the reader study.

- :func:`cluster_bootstrap`: the paper's non-parametric bootstrap (section 4.6: 1,000 resamples, 2.5th and
  97.5th percentiles), resampling readers and cases as clusters (two-way: a resample draws readers with
  replacement and cases with replacement and keeps every reading of a drawn reader on a drawn case, once per
  draw). ``scipy.stats.bootstrap`` resamples rows only, so the cluster draw is done here.
- :func:`mixed_model`: ``outcome ~ arm`` with crossed reader and case random intercepts in statsmodels MixedLM
  (one group holding all rows, reader and case as variance components).
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

N_RESAMPLES = 1000
PERCENTILES = (2.5, 97.5)

MIXED_MODEL_COLUMNS: dict[str, str] = {
    "outcome": "modelled column",
    "arm": "Arm.code compared with the reference arm",
    "effect": "fixed effect: arm minus reference arm, outcome units",
    "se": "standard error of the effect",
    "ci_low": "Wald 95% lower bound",
    "ci_high": "Wald 95% upper bound",
    "p_value": "two-sided Wald p-value",
    "n_obs": "readings in the fit",
    "converged": "optimizer converged",
    "warnings": "what statsmodels warned while fitting (e.g. a singular fit's NaN standard errors), '; '-separated",
    "reader_var": "variance of the reader random intercept",
    "case_var": "variance of the case random intercept",
    "residual_var": "residual variance",
}


def cluster_bootstrap(
    reader_codes: np.ndarray,
    case_codes: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    names: pd.Index,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile CIs of ``statistic`` under a two-way (reader, case) cluster bootstrap.

    Args:
        reader_codes: (N,) int, reader of each reading, coded 0..n_readers-1.
        case_codes: (N,) int, case of each reading, coded 0..n_cases-1.
        statistic: ``(rows, readers) -> (K,) float``: ``rows`` are positions of the resampled readings (a
            reading repeats once per draw of its reader times its case), ``readers`` (same length) the reader
            of each row renumbered by draw, so a reader drawn twice counts as two readers. NaN is allowed
            (e.g. an arm absent from a resample). On the full data it is called with ``arange(N)`` and
            ``reader_codes``.
        names: (K,) index naming the statistic's outputs.
        n_resamples: bootstrap resamples (paper: 1,000).
        seed: seed of the ``numpy.random.default_rng`` generator.

    Returns:
        DataFrame indexed by ``names`` with ``estimate`` (on the full data), ``ci_low``, ``ci_high`` (2.5th /
        97.5th percentiles over resamples with a value) and ``n_resamples`` (resamples that gave a value).

    Raises:
        ValueError: no readings, mismatched lengths, or ``n_resamples`` < 1.
    """
    reader_codes, case_codes = np.asarray(reader_codes), np.asarray(case_codes)
    if reader_codes.size == 0 or reader_codes.shape != case_codes.shape:
        raise ValueError(f"need equal, non-empty code arrays; got {reader_codes.shape} and {case_codes.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples} must be >= 1")
    n_readers, n_cases = int(reader_codes.max()) + 1, int(case_codes.max()) + 1
    estimate = np.asarray(statistic(np.arange(reader_codes.size), reader_codes), dtype=float)
    rows_by_reader = [np.flatnonzero(reader_codes == r) for r in range(n_readers)]
    rng = np.random.default_rng(seed)
    draws = np.full((n_resamples, estimate.size), np.nan)
    for b in range(n_resamples):
        drawn_readers = rng.integers(n_readers, size=n_readers)
        case_multiplicity = np.bincount(rng.integers(n_cases, size=n_cases), minlength=n_cases)
        repeated = [np.repeat(rows_by_reader[r], case_multiplicity[case_codes[rows_by_reader[r]]])
                    for r in drawn_readers]
        rows = np.concatenate(repeated)
        if rows.size:
            readers = np.repeat(np.arange(n_readers), [len(r) for r in repeated])
            draws[b] = statistic(rows, readers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        low, high = np.nanpercentile(draws, PERCENTILES, axis=0)
    return pd.DataFrame(
        {"estimate": estimate, "ci_low": low, "ci_high": high, "n_resamples": (~np.isnan(draws)).sum(axis=0)},
        index=names,
    )


def mixed_model(frame: pd.DataFrame, outcome: str, reference_arm: str) -> pd.DataFrame:
    """Fit ``outcome ~ C(arm, Treatment(reference_arm))`` with crossed reader and case random intercepts.

    Args:
        frame: one row per reading with ``outcome``, ``arm``, ``reader`` and ``case`` columns; rows with a
            missing outcome must already be removed (and reported) by the caller.
        outcome: column to model (e.g. ``active_seconds``).
        reference_arm: the arm the other arms are compared with (paper: the normal template).

    Returns:
        One row per arm other than the reference: ``outcome``, ``arm``, ``effect`` (difference from the
        reference arm, outcome units), ``se``, ``ci_low``, ``ci_high`` (Wald 95%), ``p_value``, ``n_obs``,
        ``converged``, ``warnings`` (what statsmodels warned while fitting, caught rather than printed; empty if
        nothing), ``reader_var``, ``case_var``, ``residual_var``.

    Raises:
        ValueError: a missing outcome value, or the reference arm or a second arm absent.
    """
    if frame[outcome].isna().any():
        raise ValueError(f"{outcome} has missing values; drop and report them before fitting")
    arms = sorted(frame["arm"].unique())
    if reference_arm not in arms or len(arms) < 2:
        raise ValueError(f"need reference arm {reference_arm!r} and another arm; have {arms}")
    data = frame[[outcome, "arm", "reader", "case"]].assign(group=1)
    model = smf.mixedlm(
        f"{outcome} ~ C(arm, Treatment({reference_arm!r}))",
        data,
        groups="group",
        re_formula="0",
        vc_formula={"reader": "0 + C(reader)", "case": "0 + C(case)"},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # recorded in the table's ``warnings`` column, never printed
        fit = model.fit(reml=True)
        ci = fit.conf_int()
        vc = dict(zip(model.exog_vc.names, np.atleast_1d(fit.vcomp)))
        terms = [term for term in fit.fe_params.index if term.startswith("C(arm")]
        estimates = {term: (fit.fe_params[term], fit.bse_fe[term], fit.pvalues[term]) for term in terms}
    warned = "; ".join(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    rows = []
    for term, (effect, se, p_value) in estimates.items():
        arm = term.split("[T.")[1].rstrip("]")
        rows.append({
            "outcome": outcome, "arm": arm, "effect": effect, "se": se,
            "ci_low": ci.loc[term, 0], "ci_high": ci.loc[term, 1], "p_value": p_value,
            "n_obs": int(fit.nobs), "converged": bool(fit.converged), "warnings": warned,
            "reader_var": vc.get("reader"), "case_var": vc.get("case"), "residual_var": fit.scale,
        })
    return pd.DataFrame(rows, columns=list(MIXED_MODEL_COLUMNS))
