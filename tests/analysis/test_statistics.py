"""Intervals for the crossed reader x case design (known answers on small designs, a fast coverage check), the
vectorised estimates and the crossed random-effects mixed model."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.efficiency import reader_arm_table, stratified_time_saved
from analysis.estimates import ArmEstimates
from analysis.intervals import (ADJUSTMENTS, NOT_ESTIMABLE, crossed_intervals, grouped_means, not_estimable_reason,
                                remove_main_effects)
from analysis.preferences import PreferenceEstimates, preference_rates
from analysis.similarity import template_use
from analysis.simulation import CrossedEffects, crossed_truth, simulate_outcomes, simulate_study
from analysis.statistics import mixed_model


def _mean(values):
    """Weighted mean of ``values`` per resample: (B, N) weights -> (B, 1)."""
    return lambda w, rw, cw: (w @ values / w.sum(axis=1))[:, None]


def _arm_means(arm, values):
    """Arm means of ``values``: (B, N) weights -> (B, arms)."""
    return lambda w, rw, cw: grouped_means(w, arm, values, int(arm.max()) + 1)


def _complete(n_readers, n_cases):
    return np.repeat(np.arange(n_readers), n_cases), np.tile(np.arange(n_cases), n_readers)


def test_zero_variance_is_not_estimable_never_zero_width():
    """Constant values, one reader with one reading per arm, one case: NaN bounds and a note naming why, never
    ``x to x``."""
    readers, cases = _complete(4, 5)
    ci = crossed_intervals(readers, cases, _mean(np.full(20, 7.0)), pd.Index(["m"]), n_resamples=50).loc["m"]
    assert ci["estimate"] == 7.0 and np.isnan([ci["ci_low"], ci["ci_high"], ci["se"]]).all()
    assert ci["note"] == NOT_ESTIMABLE + "zero variance: values alike or too few readings; needs >= 2 readers and >= 2 cases"
    assert ci["n_resamples"] == 50 and ci["readers"] == "random"
    # one reader, one case per arm (the demo read by one reader): arm means and their difference
    per_arm = _arm_means(np.array([0, 1]), np.array([35.8, 20.0]))
    both = lambda w, rw, cw: np.hstack([per_arm(w, rw, cw), per_arm(w, rw, cw)[:, [1]] - per_arm(w, rw, cw)[:, [0]]])
    one = crossed_intervals(np.zeros(2, int), np.arange(2), both, pd.Index(["a", "b", "b - a"]), n_resamples=50)
    assert one["estimate"].tolist() == pytest.approx([35.8, 20.0, -15.8])
    assert one[["ci_low", "ci_high"]].isna().all().all()
    assert {not_estimable_reason(n) for n in one["note"]} == {"1 reader"}
    # several readers, but an arm read once: the estimate rests on that case
    rests = crossed_intervals(np.array([0, 1, 1]), np.array([0, 1, 2]),
                              _arm_means(np.array([0, 1, 1]), np.array([4.0, 2.0, 2.0])), pd.Index(["a", "b"]),
                              n_resamples=50)
    assert rests.loc["a", "note"].startswith(NOT_ESTIMABLE + "1 case in this estimate")
    assert rests.loc["b", "note"].startswith(NOT_ESTIMABLE + "1 reader in this estimate")
    single_case = crossed_intervals(np.arange(3), np.zeros(3, int), _mean(np.arange(3.0)), pd.Index(["m"]),
                                    n_resamples=50).loc["m"]
    assert np.isnan(single_case["ci_low"]) and not_estimable_reason(single_case["note"]) == "1 case"
    assert not_estimable_reason("") == "" and not_estimable_reason(float("nan")) == ""


def test_normal_design_intervals_unchanged_by_the_estimability_check():
    """On a 10 x 75 simulated study every interval is estimable (empty note) and is exactly the CGM interval of
    the returned variance terms (estimate +- t(min(R, C) - 1) sqrt(V_reader + V_case - V_reading)), the check
    drawing no random numbers."""
    sim = simulate_outcomes(10, 75, seed=11)
    est = ArmEstimates(sim.readings, ["active_seconds", "peer_discrepancy"], ["template", "llm", "model"], "template")
    keep = ~est.log_scale
    ci = crossed_intervals(est.reader_codes, est.case_codes, est, est.names, est.readers_fixed, n_resamples=200,
                           adjusted=est.without_main_effects, seed=3)[keep]
    assert (ci["note"] == "").all() and np.isfinite(ci[["ci_low", "ci_high"]]).all().all()
    random = ci[ci["readers"] == "random"]
    v = random["var_readers"] + random["var_cases"] - random["var_readings"]
    v = v.where(v > 0, np.fmax(random["var_readers"], random["var_cases"]))
    half = stats.t.ppf(0.975, 9) * np.sqrt(v)
    assert random["ci_low"].to_numpy() == pytest.approx((random["estimate"] - half).to_numpy(), rel=1e-12)
    assert random["ci_high"].to_numpy() == pytest.approx((random["estimate"] + half).to_numpy(), rel=1e-12)
    fixed = ci[ci["readers"] == "fixed"]
    half = stats.t.ppf(0.975, 74) * np.sqrt(fixed["var_cases"])
    assert len(fixed) and fixed["ci_low"].to_numpy() == pytest.approx((fixed["estimate"] - half).to_numpy())


def test_pure_reader_effect_known_answer():
    """y = a_r on a complete 8 x 30 design: resampling cases never changes the mean (V_case = 0 exactly); the
    reader term is s_a^2 / R (the unbiased variance of a mean of R reader means); the reading term is the variance of
    a mean of N iid readings, s_y^2 / N. V = V_reader - V_reading; the interval is estimate +- t(R - 1) se."""
    readers, cases = _complete(8, 30)
    a = np.array([1.0, 4.0, 2.0, 8.0, 5.0, 7.0, 3.0, 6.0])
    y = a[readers]
    ci = crossed_intervals(readers, cases, _mean(y), pd.Index(["m"]), n_resamples=20000, seed=3).loc["m"]
    assert ci["estimate"] == pytest.approx(4.5)
    assert ci["var_cases"] == pytest.approx(0.0, abs=1e-20)
    assert ci["var_readers"] == pytest.approx(a.var(ddof=1) / 8, rel=0.04)
    assert ci["var_readings"] == pytest.approx(y.var(ddof=1) / y.size, rel=0.04)
    assert ci["se"] ** 2 == pytest.approx(ci["var_readers"] - ci["var_readings"], rel=1e-9)
    assert ci["df"] == 7
    half = stats.t.ppf(0.975, 7) * ci["se"]
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx((4.5 - half, 4.5 + half))


def test_pure_case_effect_known_answer():
    """y = b_c: resampling readers never changes the mean (V_reader = 0), the case term is s_b^2 / C."""
    readers, cases = _complete(5, 40)
    b = np.random.default_rng(0).normal(0, 2, 40)
    ci = crossed_intervals(readers, cases, _mean(b[cases]), pd.Index(["m"]), n_resamples=20000, seed=1).loc["m"]
    assert ci["var_readers"] == pytest.approx(0.0, abs=1e-20)
    assert ci["var_cases"] == pytest.approx(b.var(ddof=1) / 40, rel=0.04)
    assert ci["df"] == 4  # min(readers, cases) - 1


def test_fixed_readers_use_the_case_term_only():
    readers, cases = _complete(3, 12)
    y = np.arange(36, dtype=float) % 7
    both = lambda w, rw, cw: np.hstack([_mean(y)(w, rw, cw)] * 2)
    ci = crossed_intervals(readers, cases, both, pd.Index(["random", "fixed"]), np.array([False, True]),
                           n_resamples=400, seed=2)
    assert ci.loc["fixed", "se"] ** 2 == pytest.approx(ci.loc["fixed", "var_cases"])
    assert (ci.loc["fixed", "df"], ci.loc["random", "df"]) == (11, 2)
    assert ci["readers"].tolist() == ["random", "fixed"]
    one_reader = crossed_intervals(np.zeros(6, int), np.arange(6), _mean(np.arange(6.0)), pd.Index(["m"]),
                                   n_resamples=100)
    assert one_reader.loc["m", "readers"] == "fixed" and one_reader.loc["m", "df"] == 5


def test_interval_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        crossed_intervals(np.array([]), np.array([]), _mean(np.array([])), pd.Index(["m"]))
    with pytest.raises(ValueError, match="n_resamples=1"):
        crossed_intervals(np.array([0, 1]), np.array([0, 1]), _mean(np.ones(2)), pd.Index(["m"]), n_resamples=1)
    with pytest.raises(ValueError, match=r"readers_fixed has shape \(2,\)"):
        crossed_intervals(np.array([0, 1]), np.array([0, 1]), _mean(np.ones(2)), pd.Index(["m"]),
                          np.array([True, False]))


def _latin_square():
    """3 readers x 3 cases, arm (reader + case) % 3: each reader and each case has every arm once."""
    readers, cases = _complete(3, 3)
    return readers, cases, (readers + cases) % 3


def test_remove_main_effects_on_an_additive_latin_square():
    """y = m_arm + a_reader + b_case with a and b summing to 0: the arm-centred values are a + b, so the reader
    effects are a, the case effects b (from all readers, or from the other readers after the reader means)."""
    readers, cases, arms = _latin_square()
    m, a, b = np.array([10.0, 20.0, 30.0]), np.array([-1.0, 0.0, 1.0]), np.array([2.0, -5.0, 3.0])
    y = m[arms] + a[readers] + b[cases]
    expected = {"readers": m[arms] + b[cases], "cases": m[arms] + a[readers],
                "cases_other_readers": m[arms] + a[readers], "readers_and_cases": m[arms]}
    for kind, values in expected.items():
        assert remove_main_effects(y, arms, readers, cases, kind) == pytest.approx(values), kind
    two = remove_main_effects(np.stack([y, 2 * y], axis=1), arms, readers, cases, "readers_and_cases")
    assert two.shape == (9, 2) and two[:, 1] == pytest.approx(2 * m[arms])


def test_remove_main_effects_leaves_nan_out_and_refuses_unknown_kinds():
    readers, cases, arms = _latin_square()
    y = np.arange(9.0)
    y[4] = np.nan
    out = remove_main_effects(y, arms, readers, cases, "cases_other_readers")
    assert np.isnan(out[4]) and np.isfinite(np.delete(out, 4)).all()
    with pytest.raises(ValueError, match="kind must be one of"):
        remove_main_effects(y, arms, readers, cases, "rows")


def test_adjusted_terms_known_answer_for_a_pure_reader_effect():
    """y = a_r on a complete 6 x 12 design with rotated arms, statistic the overall mean and its adjustments:
    the case effects of the arm-centred values are 0 and the reader-adjusted values are constant, so V_case =
    V_reading = 0 exactly and V = V_reader = s_a^2 / R (the unbiased variance of a mean of R reader means)."""
    readers, cases = _complete(6, 12)
    arms = (readers + cases) % 3
    a = np.array([3.0, -1.0, 4.0, 1.0, -5.0, 9.0])
    y = a[readers]

    def adjusted(kind):
        assert kind in ADJUSTMENTS
        return _mean(remove_main_effects(y, arms, readers, cases, kind))

    ci = crossed_intervals(readers, cases, _mean(y), pd.Index(["m"]), n_resamples=20000, adjusted=adjusted,
                           seed=4).loc["m"]
    assert ci["var_cases"] == pytest.approx(0.0, abs=1e-20) and ci["var_readings"] == pytest.approx(0.0, abs=1e-20)
    assert ci["se"] ** 2 == pytest.approx(a.var(ddof=1) / 6, rel=0.04)
    assert ci["df"] == 5


def test_adjusted_terms_drop_the_case_effects_that_a_rotated_difference_cancels():
    """y = b_c + small residual, statistic arm 1 minus arm 0 on a 6 x 12 design where every case has each arm
    twice: the case effects cancel in the difference, so its variance is the residual's; the unadjusted reader term
    carries the case effects (each reader's arms cover different cases) and so does the unadjusted se through the
    noise of V_reader + V_case - V_reading; the adjusted terms do not."""
    readers, cases = _complete(6, 12)
    arms = (readers + cases) % 3
    rng = np.random.default_rng(5)
    y = rng.normal(0, 10, 12)[cases] + rng.normal(0, 0.1, 72)

    def difference(values):
        return lambda w, rw, cw: np.diff(grouped_means(w, arms, values, 3)[:, :2], axis=1)

    adjusted = lambda kind: difference(remove_main_effects(y, arms, readers, cases, kind))
    raw = crossed_intervals(readers, cases, difference(y), pd.Index(["d"]), n_resamples=2000, seed=6).loc["d"]
    adj = crossed_intervals(readers, cases, difference(y), pd.Index(["d"]), n_resamples=2000, adjusted=adjusted,
                            seed=6).loc["d"]
    residual_variance = 0.1 ** 2 * (1 / 24 + 1 / 24)
    assert raw["var_readers"] > 100 * residual_variance
    assert adj["var_readers"] < 3 * residual_variance
    assert adj["se"] ** 2 == pytest.approx(adj["var_readers"] + adj["var_cases"] - adj["var_readings"])
    assert adj["se"] < 0.1 * raw["se"]


def test_log_scale_interval_and_its_fallback():
    """A positive estimate on the log scale: estimate * exp(+-t se / estimate); a negative estimate keeps the Wald
    interval (no log); all zeros have none (zero variance)."""
    readers, cases = _complete(4, 6)
    y = np.where(np.arange(24) % 5 == 0, 3.0, 0.0)
    both = lambda w, rw, cw: np.hstack([_mean(y)(w, rw, cw), _mean(-y)(w, rw, cw), _mean(np.zeros(24))(w, rw, cw)])
    ci = crossed_intervals(readers, cases, both, pd.Index(["rate", "negative", "zero"]), n_resamples=500,
                           log_scale=np.array([True, True, True]), seed=7)
    rate = ci.loc["rate"]
    h = stats.t.ppf(0.975, rate["df"]) * rate["se"] / rate["estimate"]
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx((rate["estimate"] * np.exp(-h),
                                                               rate["estimate"] * np.exp(h)))
    assert rate["ci_low"] > 0
    negative = ci.loc["negative"]
    h = stats.t.ppf(0.975, negative["df"]) * negative["se"]
    assert (negative["ci_low"], negative["ci_high"]) == pytest.approx((negative["estimate"] - h,
                                                                       negative["estimate"] + h))
    assert ci.loc["zero", ["ci_low", "ci_high"]].isna().all() and ci.loc["zero", "note"].startswith(NOT_ESTIMABLE)
    with pytest.raises(ValueError, match=r"log_scale has shape \(1,\)"):
        crossed_intervals(readers, cases, _mean(y), pd.Index(["m", "n"]), log_scale=np.array([True]),
                          readers_fixed=np.array([False, False]))


def test_grouped_means_known_values():
    weights = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 1.0, 0.0]])
    groups = np.array([0, 0, 1, -1])
    values = np.array([1.0, 3.0, np.nan, 5.0])
    means = grouped_means(weights, groups, values, 2)
    assert means[0].tolist()[0] == 2.0 and np.isnan(means[0, 1])  # NaN left out, reading -1 left out
    assert means[1, 0] == 1.0


def test_vectorised_estimates_match_the_tables():
    frame = simulate_study(n_readers=6, n_cases=12, seed=5).readings
    frame = frame.assign(template_use=[template_use(d, f) for d, f in zip(frame["draft_text"], frame["final_text"])],
                         peer_discrepancy=np.arange(len(frame)) % 3 / 2)
    estimates = ArmEstimates(frame, ["active_seconds", "template_use"], ["template", "llm", "model"], "template")
    n = len(frame)
    values = pd.Series(estimates(np.ones((1, n)), np.ones((1, 6)), np.ones((1, 12)))[0], index=estimates.names)
    means = frame.groupby("arm")["active_seconds"].mean()
    assert values[("mean", "active_seconds", "llm", 0)] == pytest.approx(means["llm"])
    assert values[("difference", "active_seconds", "model", 0)] == pytest.approx(means["model"] - means["template"])
    table = stratified_time_saved(reader_arm_table(frame, "template"), "template")
    for row in table.itertuples():
        assert values[("saved", "saved_minutes_per_100", row.arm, row.top_percent)] == pytest.approx(
            row.saved_minutes_per_100)
    fixed = dict(zip(estimates.names, estimates.readers_fixed))
    assert fixed[("saved", "saved_minutes_per_100", "model", 50)] and not fixed[
        ("saved", "saved_minutes_per_100", "model", 100)]
    # a reader drawn twice counts twice: reader weights 2, 0, 1, ... equal duplicating that reader's readings
    reader_weights = np.array([[2.0, 0.0, 1.0, 1.0, 1.0, 1.0]])
    weighted = estimates(reader_weights[:, estimates.reader_codes], reader_weights, np.ones((1, 12)))[0]
    doubled = pd.concat([frame, frame[frame["reader"] == "reader00"].assign(reader="copy")])
    doubled = doubled[doubled["reader"] != "reader01"]
    copy = ArmEstimates(doubled, ["active_seconds", "template_use"], ["template", "llm", "model"], "template")
    k = list(estimates.names).index(("saved", "saved_minutes_per_100", "model", 100))
    plain = copy(np.ones((1, len(doubled))), np.ones((1, 6)), np.ones((1, 12)))[0]
    assert weighted[k] == pytest.approx(plain[list(copy.names).index(("saved", "saved_minutes_per_100", "model",
                                                                         100))])


def test_preference_per_case_counts_a_case_once():
    """Case c1 judged by three readers (two for the candidate), c2 by one (for it): per case (2/3 + 1) / 2, per
    judgement 3/4."""
    judgements = pd.DataFrame({"reader": ["r1", "r2", "r3", "r1"], "case": ["c1", "c1", "c1", "c2"],
                               "case_label": ["abnormal", "abnormal", "abnormal", "normal"],
                               "candidate_outcome": ["better", "equivalent", "worse", "better"]})
    estimates = PreferenceEstimates(judgements)
    values = pd.Series(estimates(np.ones((1, 4)), np.ones((1, 3)), np.ones((1, 2)))[0], index=estimates.names)
    assert values[("per case", "overall")] == pytest.approx((2 / 3 + 1) / 2)
    assert values[("per judgement", "overall")] == pytest.approx(3 / 4)
    assert values[("per case", "abnormal")] == pytest.approx(2 / 3)
    assert values[("per case", "normal")] == 1.0
    # case c1 drawn twice, c2 not: the rate is c1's
    cw = np.array([[2.0, 0.0]])
    assert estimates(cw[:, estimates.case_codes], np.ones((1, 3)), cw)[0, 0] == pytest.approx(2 / 3)


def test_coverage_sanity_on_simulated_studies():
    """A fast version of bench/coverage.py: 40 studies of 10 readers x 75 cases; the time difference and the
    per-case preference rate are covered in at least 34 of 40 (a 95% interval: expected 38), and neither interval
    is more than 1.5 times the width the sampling spread supports (the two-way percentile bootstrap this replaces
    was 2-2.5 times)."""
    effects = CrossedEffects()
    truth = crossed_truth(effects)
    rows = []
    for rep in range(40):
        sim = simulate_outcomes(effects=effects, seed=100 + rep)
        est = ArmEstimates(sim.readings, ["active_seconds"], list(effects.arm_seconds), "template")
        ci = crossed_intervals(est.reader_codes, est.case_codes, est, est.names, est.readers_fixed,
                               n_resamples=200, adjusted=est.without_main_effects, seed=rep).loc[
            ("difference", "active_seconds", "model", 0)]
        prefs = PreferenceEstimates(sim.judgements)
        pref = crossed_intervals(prefs.reader_codes, prefs.case_codes, prefs, prefs.names, n_resamples=200,
                                 seed=rep).loc[("per case", "overall")]
        rows.append({"time": ci, "preference": pref})
    for name, key in (("time", ("difference", "active_seconds", "model", 0)),
                      ("preference", ("preference", "per case", "overall"))):
        table = pd.DataFrame([r[name] for r in rows])
        covered = ((table["ci_low"] <= truth[key]) & (truth[key] <= table["ci_high"])).sum()
        width = (table["ci_high"] - table["ci_low"]).mean() / (3.92 * table["estimate"].std(ddof=1))
        assert covered >= 34, (name, covered)
        assert 0.6 < width < 1.5, (name, width)


def test_mixed_model_recovers_an_arm_effect():
    frame = simulate_study(seed=2).readings
    fit = mixed_model(frame, "active_seconds", "template").set_index("arm")
    assert fit.loc["model", "ci_low"] <= -15.0 <= fit.loc["model", "ci_high"]
    assert fit.loc["model", "reader_var"] > fit.loc["model", "residual_var"]
    assert fit.loc["model", "p_value"] < 1e-6


def test_mixed_model_bad_input():
    frame = simulate_study(n_readers=3, n_cases=6).readings
    with pytest.raises(ValueError, match="reference arm 'control'"):
        mixed_model(frame, "active_seconds", "control")
    with pytest.raises(ValueError, match="missing values"):
        mixed_model(frame.assign(active_seconds=np.nan), "active_seconds", "template")


def test_mixed_model_records_fit_warnings_and_withholds_p_values():
    """Two readers x three cases: the fit is singular, statsmodels' sqrt of a negative variance is caught and
    recorded in the ``warnings`` column, and the p-values of such a fit are withheld (NaN); nothing reaches the
    warnings machinery (``error`` turns it into a raise)."""
    small = simulate_study(n_readers=2, n_cases=3, seed=1).readings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = mixed_model(small, "active_seconds", "template")
        clean = mixed_model(simulate_study(seed=2).readings, "active_seconds", "template")
    assert set(fit["warnings"]) == {"RuntimeWarning: invalid value encountered in sqrt"}
    assert fit["se"].isna().any() and fit["p_value"].isna().all()
    assert set(clean["warnings"]) == {""} and clean["p_value"].notna().all()


def test_preference_rates_bounds_stay_in_zero_one():
    """Three readers, six pairs: t(2) makes the Wald interval wider than [0, 1]; the bounds are clipped to it, and
    a group without judgements has zero counts and no rate."""
    judgements = simulate_outcomes(n_readers=3, n_cases=6, judges_per_pair=2, seed=0).judgements
    table = preference_rates(judgements.assign(case_label="abnormal"), n_resamples=100).set_index("group")
    assert table.loc["overall", "ci_low"] >= 0.0 and table.loc["overall", "ci_high"] <= 1.0
    assert table.loc["overall", ["n_cases", "n_judgements", "n_readers"]].tolist() == [6, 12, 3]
    assert table.loc["normal", "n_judgements"] == 0 and np.isnan(table.loc["normal", "equivalent_or_better"])
    with pytest.raises(ValueError, match="candidate_outcome must be one of"):
        preference_rates(judgements.assign(candidate_outcome="maybe"))
