"""Cluster bootstrap, the vectorised estimates and the crossed random-effects mixed model."""

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.efficiency import reader_arm_table, stratified_time_saved
from analysis.estimates import ArmEstimates
from analysis.simulation import simulate_study
from analysis.similarity import template_use
from analysis.statistics import cluster_bootstrap, mixed_model


def _mean_statistic(values):
    return lambda rows, readers: np.array([values[rows].mean()])


def test_bootstrap_of_a_constant_has_zero_width():
    readers, cases = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
    ci = cluster_bootstrap(readers, cases, _mean_statistic(np.full(20, 7.0)), pd.Index(["m"]), n_resamples=50)
    assert ci.loc["m"].tolist() == [7.0, 7.0, 7.0, 50]


def test_bootstrap_resamples_reader_clusters():
    """All variation is between readers: the CI is the spread of means of resampled reader sets."""
    readers, cases = np.repeat(np.arange(10), 20), np.tile(np.arange(20), 10)
    values = readers.astype(float)  # reader r reads every case with value r
    ci = cluster_bootstrap(readers, cases, _mean_statistic(values), pd.Index(["m"]), n_resamples=1000, seed=1)
    draws = np.random.default_rng(1).integers(10, size=(20000, 10)).mean(axis=1)
    assert ci.loc["m", "estimate"] == 4.5
    assert ci.loc["m", "ci_low"] == pytest.approx(np.percentile(draws, 2.5), abs=0.35)
    assert ci.loc["m", "ci_high"] == pytest.approx(np.percentile(draws, 97.5), abs=0.35)
    # a row bootstrap would be far narrower: 200 rows, sd 2.87 -> half-width 0.4
    assert ci.loc["m", "ci_high"] - ci.loc["m", "ci_low"] > 2.5


def test_bootstrap_renumbers_readers_drawn_twice():
    seen = []

    def statistic(rows, readers):
        seen.append(len(np.unique(readers)))
        return np.array([1.0])

    cluster_bootstrap(np.array([0, 1, 2]), np.array([0, 0, 0]), statistic, pd.Index(["x"]), n_resamples=30)
    assert set(seen) == {3}


def test_bootstrap_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        cluster_bootstrap(np.array([]), np.array([]), _mean_statistic(np.array([])), pd.Index(["m"]))
    with pytest.raises(ValueError, match="n_resamples=0"):
        cluster_bootstrap(np.array([0]), np.array([0]), _mean_statistic(np.ones(1)), pd.Index(["m"]), 0)


def test_vectorised_estimates_match_the_tables():
    frame = simulate_study(n_readers=6, n_cases=12, seed=5).readings
    frame = frame.assign(template_use=[template_use(d, f) for d, f in zip(frame["draft_text"], frame["final_text"])])
    estimates = ArmEstimates(frame, ["active_seconds", "template_use"], ["template", "llm", "model"], "template")
    readers = pd.factorize(frame["reader"])[0]
    values = pd.Series(estimates(np.arange(len(frame)), readers), index=estimates.names)
    means = frame.groupby("arm")["active_seconds"].mean()
    assert values[("mean", "active_seconds", "llm", 0)] == pytest.approx(means["llm"])
    assert values[("difference", "active_seconds", "model", 0)] == pytest.approx(means["model"] - means["template"])
    table = stratified_time_saved(reader_arm_table(frame, "template"), "template")
    for row in table.itertuples():
        assert values[("saved", "saved_minutes_per_100", row.arm, row.top_percent)] == pytest.approx(
            row.saved_minutes_per_100)


def test_mixed_model_recovers_an_arm_effect():
    frame = simulate_study(seed=2).readings
    fit = mixed_model(frame, "active_seconds", "template").set_index("arm")
    assert fit.loc["model", "ci_low"] <= -15.0 <= fit.loc["model", "ci_high"]
    assert fit.loc["model", "reader_var"] > fit.loc["model", "residual_var"]


def test_mixed_model_bad_input():
    frame = simulate_study(n_readers=3, n_cases=6).readings
    with pytest.raises(ValueError, match="reference arm 'control'"):
        mixed_model(frame, "active_seconds", "control")
    with pytest.raises(ValueError, match="missing values"):
        mixed_model(frame.assign(active_seconds=np.nan), "active_seconds", "template")


def test_mixed_model_records_fit_warnings_instead_of_printing():
    """Two readers x three cases: the fit is singular, statsmodels' sqrt of a negative variance is caught and
    recorded in the ``warnings`` column; nothing reaches the warnings machinery (``error`` turns it into a raise)."""
    small = simulate_study(n_readers=2, n_cases=3, seed=1).readings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = mixed_model(small, "active_seconds", "template")
        clean = mixed_model(simulate_study(seed=2).readings, "active_seconds", "template")
    assert set(fit["warnings"]) == {"RuntimeWarning: invalid value encountered in sqrt"}
    assert fit["se"].isna().any()
    assert set(clean["warnings"]) == {""}
