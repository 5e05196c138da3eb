"""Blinded comparison preference rates as the paper reports them (section 2.4, Fig. 4c: the AI report was equivalent
or better "in 71% of cases", 95% of normal and 58% of abnormal cases), with intervals that respect pairs judged by
several readers.

A case counts once: each case's rate is the share of its submitted judgements that find the candidate (AI) report
equivalent or better (a case judged by three readers, two of them for the candidate, counts 2/3), and the rate of a
group of cases is the mean of its cases' rates. The per-judgement rate (every judgement counts once) is given beside
it, labelled as such. Only judgements of readers who submitted the set count (the caller filters).

Judgements are crossed by reader and pair, so the intervals are :func:`analysis.intervals.crossed_intervals` over
readers and cases (two-way cluster-robust variance, Cameron, Gelbach & Miller 2011); resampling judgements as if
independent undercovers when several readers judge the same pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.intervals import LEVEL, N_RESAMPLES, crossed_intervals, grouped_means

GROUPS = ("overall", "normal", "abnormal")
OUTCOMES = ("better", "equivalent", "worse")

PREFERENCE_COLUMNS: dict[str, str] = {
    "group": "cases: overall, normal or abnormal (Case.label)",
    "n_cases": "cases with at least one submitted judgement",
    "n_judgements": "submitted judgements",
    "n_readers": "readers with a submitted judgement",
    "better": "judgements with the candidate better",
    "equivalent": "judgements with the reports equivalent",
    "worse": "judgements with the candidate worse",
    "equivalent_or_better": "per case (primary): mean over cases of the share of the case's judgements with the "
                            "candidate equivalent or better",
    "ci_low": "95% lower bound of the per-case rate (two-way reader x case cluster-robust, analysis.intervals)",
    "ci_high": "95% upper bound of the per-case rate",
    "per_judgement_equivalent_or_better": "per judgement: share of all judgements with the candidate equivalent "
                                          "or better",
    "per_judgement_ci_low": "95% lower bound of the per-judgement rate (same method)",
    "per_judgement_ci_high": "95% upper bound of the per-judgement rate",
    "ci_note": "empty, or 'not estimable: <why>' where the per-case bounds are NaN (e.g. 1 reader, all alike)",
    "per_judgement_ci_note": "the same for the per-judgement bounds",
    "readers": "'random' (generalises to other readers) or 'fixed' (one reader: for that reader only)",
}


class PreferenceEstimates:
    """Statistic for :func:`analysis.intervals.crossed_intervals`: per-case and per-judgement rates of the candidate
    being equivalent or better, overall and by case label.

    Args:
        judgements: one row per submitted judgement with ``reader``, ``case``, ``case_label`` and
            ``candidate_outcome`` (better / equivalent / worse).

    Attributes:
        names: MultiIndex (unit, group): unit ``per case`` / ``per judgement``, group in :data:`GROUPS`.
        reader_codes, case_codes: (N,) int codes of the rows.
    """

    def __init__(self, judgements: pd.DataFrame):
        self.reader_codes = pd.factorize(judgements["reader"])[0]
        self.case_codes, cases = pd.factorize(judgements["case"])
        self.n_cases = len(cases)
        self.good = (judgements["candidate_outcome"] != "worse").to_numpy(float)
        labels = judgements.groupby("case", sort=False)["case_label"].first().reindex(cases)
        self.case_in = {g: np.ones(self.n_cases, bool) if g == "overall" else (labels == g).to_numpy()
                        for g in GROUPS}
        self.row_in = {g: self.case_in[g][self.case_codes] for g in GROUPS}
        self.names = pd.MultiIndex.from_product([["per case", "per judgement"], GROUPS], names=["unit", "group"])

    def __call__(self, weights: np.ndarray, reader_weights: np.ndarray, case_weights: np.ndarray) -> np.ndarray:
        per_case = grouped_means(weights, self.case_codes, self.good, self.n_cases)  # (B, cases)
        out = []
        for g in GROUPS:
            w = np.where(np.isnan(per_case) | ~self.case_in[g], 0.0, case_weights)
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append(np.nansum(per_case * w, axis=1) / w.sum(axis=1))
        for g in GROUPS:
            out.append(grouped_means(weights, np.where(self.row_in[g], 0, -1), self.good, 1)[:, 0])
        return np.stack(out, axis=1)


def preference_intervals(judgements: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = 0,
                         level: float = LEVEL) -> pd.DataFrame:
    """Intervals of every :class:`PreferenceEstimates` output, as :func:`preference_rates` reports them and
    :mod:`analysis.plan` simulates their power (one place, so that the two stay the same).

    Args:
        judgements: submitted judgements, at least one (columns as :class:`PreferenceEstimates`).
        n_resamples, seed, level: as :func:`analysis.intervals.crossed_intervals`.

    Returns:
        :func:`analysis.intervals.crossed_intervals`'s frame indexed by (unit, group).
    """
    estimates = PreferenceEstimates(judgements)
    return crossed_intervals(estimates.reader_codes, estimates.case_codes, estimates, estimates.names,
                             n_resamples=n_resamples, seed=seed, level=level)


def preference_rates(judgements: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Preference rates for the candidate per group with 95% CIs (module docstring).

    Args:
        judgements: submitted judgements, columns ``reader``, ``case``, ``case_label`` (normal / abnormal / other
            or missing: counted in ``overall`` only) and ``candidate_outcome`` (better / equivalent / worse).
        n_resamples: resamples of each one-way bootstrap.
        seed: bootstrap seed.

    Returns:
        One row per group of :data:`GROUPS` with the columns of :data:`PREFERENCE_COLUMNS`; a group without
        judgements has zero counts and NaN rates.

    Raises:
        ValueError: a ``candidate_outcome`` outside better / equivalent / worse.
    """
    unknown = set(judgements["candidate_outcome"]) - set(OUTCOMES)
    if unknown:
        raise ValueError(f"candidate_outcome must be one of {OUTCOMES}; got {sorted(unknown)}")
    rows = []
    intervals = None
    if len(judgements):
        intervals = preference_intervals(judgements, n_resamples, seed)
    for group in GROUPS:
        own = judgements if group == "overall" else judgements[judgements["case_label"] == group]
        counts = own["candidate_outcome"].value_counts()
        row = {"group": group, "n_cases": own["case"].nunique(), "n_judgements": len(own),
               "n_readers": own["reader"].nunique(), **{o: int(counts.get(o, 0)) for o in OUTCOMES}}
        for prefix, unit in (("", "per case"), ("per_judgement_", "per judgement")):
            ci = intervals.loc[(unit, group)] if intervals is not None and len(own) else None
            row[f"{prefix}equivalent_or_better"] = np.nan if ci is None else ci["estimate"]
            # a share lies in [0, 1]: the Wald bounds are clipped to it (coverage unchanged)
            row[f"{prefix}ci_low"] = np.nan if ci is None else max(ci["ci_low"], 0.0)
            row[f"{prefix}ci_high"] = np.nan if ci is None else min(ci["ci_high"], 1.0)
            row[f"{prefix}ci_note"] = "" if ci is None else ci["note"]
        row["readers"] = "" if intervals is None else intervals.loc[("per case", group), "readers"]
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PREFERENCE_COLUMNS))
