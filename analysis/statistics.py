"""Mixed model for the reader study: ``outcome ~ arm`` with crossed reader and case random intercepts in statsmodels
MixedLM (one group holding all rows, reader and case as variance components). A check beside the primary intervals
of :mod:`analysis.intervals`: it assumes the arm effect is the same for every reader (no reader x arm variance), so
its Wald interval can be narrower than the primary one when readers differ in how much a draft helps them.
"""

from __future__ import annotations

import warnings
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

MIXED_MODEL_COLUMNS: dict[str, str] = {
    "outcome": "modelled column",
    "arm": "Arm.code compared with the reference arm",
    "effect": "fixed effect: arm minus reference arm, outcome units",
    "se": "standard error of the effect",
    "ci_low": "Wald 95% lower bound",
    "ci_high": "Wald 95% upper bound",
    "p_value": "two-sided Wald p-value; withheld (empty) when the fit did not converge or warned",
    "n_obs": "readings in the fit",
    "converged": "optimizer converged",
    "warnings": "what statsmodels warned while fitting (e.g. a singular fit's NaN standard errors), '; '-separated",
    "reader_var": "variance of the reader random intercept",
    "case_var": "variance of the case random intercept",
    "residual_var": "residual variance",
    "agreement": "whether the mixed model and the primary interval agree on excluding 0 (set by the pipeline)",
}


def mixed_model(frame: pd.DataFrame, outcome: str, reference_arm: str) -> pd.DataFrame:
    """Fit ``outcome ~ C(arm, Treatment(reference_arm))`` with crossed reader and case random intercepts.

    Args:
        frame: one row per reading with ``outcome``, ``arm``, ``reader`` and ``case`` columns; rows with a
            missing outcome must already be removed (and reported) by the caller.
        outcome: column to model (e.g. ``active_seconds``).
        reference_arm: the arm the other arms are compared with (paper: the normal template).

    Returns:
        One row per arm other than the reference: ``outcome``, ``arm``, ``effect`` (difference from the
        reference arm, outcome units), ``se``, ``ci_low``, ``ci_high`` (Wald 95%), ``p_value`` (NaN when
        the fit did not converge or warned: withheld), ``n_obs``,
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
    rows = []  # the pipeline fills ``agreement``
    for term, (effect, se, p_value) in estimates.items():
        arm = term.split("[T.")[1].rstrip("]")
        rows.append({
            "outcome": outcome, "arm": arm, "effect": effect, "se": se,
            "ci_low": ci.loc[term, 0], "ci_high": ci.loc[term, 1],
            "p_value": p_value if fit.converged and not warned else np.nan,
            "n_obs": int(fit.nobs), "converged": bool(fit.converged), "warnings": warned,
            "reader_var": vc.get("reader"), "case_var": vc.get("case"), "residual_var": fit.scale,
        })
    return pd.DataFrame(rows, columns=list(MIXED_MODEL_COLUMNS))
