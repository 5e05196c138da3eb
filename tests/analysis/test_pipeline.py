"""The whole analysis on a simulated 10 reader x 75 case study with known effects: the model arm saves exactly
30 s per case for the five high template users and nothing for the others; confidence +1 and mental demand -1
in the model arm; nothing in the llm arm. Estimates must recover the effects and the 95% CIs cover them. The study
also has a blinded comparison set judged by four readers per pair, one reader of which has not submitted."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import analyse_frames
from analysis.findings import LEXICON_VERSION
from analysis.pipeline import TABLE_COLUMNS
from analysis.figures import MIN_BIN_N
from analysis.report import FIGURE_TITLES, TABLE_TITLES
from analysis.simulation import simulate_outcomes, simulate_study


def _with_judgements(frames):
    judgements = simulate_outcomes(seed=4).judgements.assign(set="blinded", candidate_source="draft:model")
    judgements.loc[judgements["reader"] == "reader09", "submitted"] = False
    return dataclasses.replace(frames, judgements=judgements)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return analyse_frames(_with_judgements(simulate_study(seed=1)), tmp_path_factory.mktemp("analysis"),
                          n_resamples=400)


def _covers(row, truth):
    return row["ci_low"] <= truth <= row["ci_high"]


def test_time_saved_by_template_use_recovers_the_known_effect(result):
    table = result.tables["time_saved_by_template_use"].set_index(["arm", "top_percent"])
    # 30 s per case = 50 minutes per 100 studies for each high user; the top 50% are exactly the high users
    # five 95% intervals (strata of fixed readers): expect about one miss in twenty
    assert sum(_covers(table.loc[("model", k)], 50.0) for k in (10, 20, 30, 40, 50)) >= 4
    assert set(table["readers"]) == {"fixed", "random"} and table.loc[("model", 100), "readers"] == "random"
    top50 = table.loc[("model", 50)]
    assert top50["n_readers"] == 5 and abs(top50["saved_minutes_per_100"] - 50) < 12
    assert _covers(table.loc[("model", 100)], 25.0)
    for k in (50, 100):
        assert _covers(table.loc[("llm", k)], 0.0)
    reader_arm = result.tables["reader_arm"].set_index(["reader", "arm"])
    ranked = reader_arm.xs("model", level="arm").sort_values("template_use", ascending=False)
    assert set(ranked.index[:5]) == {f"reader{i:02d}" for i in range(5)}


def test_likert_shifts_and_time_effects_are_covered(result):
    summary = result.tables["arm_summary"].set_index(["metric", "arm"])
    for metric, arm, truth in [("likert_confidence", "model", 1.0), ("likert_mental_demand", "model", -1.0),
                               ("likert_confidence", "llm", 0.0), ("active_seconds", "model", -15.0),
                               ("active_seconds", "llm", 0.0)]:
        row = summary.loc[(metric, arm)]
        assert row["difference_ci_low"] <= truth <= row["difference_ci_high"], (metric, arm)
    assert summary.loc[("likert_confidence", "model"), "n_readings"] == 250
    models = result.tables["mixed_models"].set_index(["outcome", "arm"])
    fit = models.loc[("active_seconds", "model")]
    assert fit["ci_low"] <= -15.0 <= fit["ci_high"] and fit["p_value"] < 1e-6 and fit["n_obs"] == 750
    assert models.loc[("active_seconds", "llm"), "p_value"] > 0.01
    assert result.reference_arm == "template"
    assert [(s.step, s.item) for s in result.skipped] == [("preferences", "set blinded x reader reader09")]


def test_every_reading_has_a_peer_discrepancy(result):
    readings = result.tables["readings"]
    assert readings["peer_discrepancy"].notna().all()
    assert len(result.tables["peer_pairs"]) == 75 * 10 * 9
    assert set(readings["similarity_measure"]) == {result.similarity_measure}
    assert result.judge == f"offline-negex {LEXICON_VERSION}"


def test_figures_are_written_and_png_decodes(result):
    assert set(result.figures) == {"fig5b_discrepancy_matrix", "fig5c_discrepancy_by_interval",
                                   "fig5d_template_use", "fig5e_time_saved", "time_by_arm", "likert_by_arm",
                                   "preference_rates"}
    for name in result.figures:
        html, png = result.files[f"{name}.html"], result.files[f"{name}.png"]
        assert html.stat().st_size > 1000 and "plotly" in html.read_text()
        with Image.open(png) as image:
            image.load()
            assert image.size == (1200, 700)
            assert np.unique(np.asarray(image.convert("L"))).size > 10  # drawn, not blank
    report = result.files["report.html"].read_text()
    assert all(f"<h2>{FIGURE_TITLES[name]}</h2>" in report for name in result.figures)
    assert all(f"<h2>{title}</h2>" in report for title in TABLE_TITLES.values())
    assert "<h2>Left out, and why</h2>" in report and "<h2>fig5" not in report


def test_report_states_the_method_resamples_and_arm_labels(result):
    report = result.files["report.html"].read_text()
    assert "<span id='resample-count'>400</span> resamples" in report and "1,000" not in report
    assert "Cameron, Gelbach &amp; Miller 2011" in report and "Why primary" in report
    assert "Arms in design order: Normal template (template), GPT-4o draft (llm), MedVersa draft (model)" in report
    assert "minutes saved per 100 studies" in report and "seconds per case" in report
    # the mixed model's form is stated, and where it disagrees with the primary interval that is said too
    assert "crossed reader and case random intercepts" in report and "a check, not the result" in report
    models = result.tables["mixed_models"]
    assert set(models["agreement"].str.split(":").str[0]) <= {"agrees", "DISAGREES",
                                                               "not comparable"}
    for row in models[models["agreement"].str.startswith("DISAGREES")].itertuples():
        assert f"The mixed model disagrees with the primary interval for {row.outcome}" in report


def test_preference_rates_per_case_over_submitted_judgements(result):
    table = result.tables["preference_rates"].set_index("group")
    assert table.loc["overall", "n_readers"] == 9  # reader09 has not submitted
    left_out = (simulate_outcomes(seed=4).judgements["reader"] == "reader09").sum()
    assert left_out == 28 and table.loc["overall", "n_judgements"] == 300 - left_out
    assert table.loc["overall", "n_cases"] == 75
    for group in ("overall", "normal", "abnormal"):
        row = table.loc[group]
        assert row["ci_low"] < row["equivalent_or_better"] < row["ci_high"]
        assert row["per_judgement_ci_low"] < row["per_judgement_equivalent_or_better"] < row["per_judgement_ci_high"]
    assert table.loc["normal", "equivalent_or_better"] > table.loc["abnormal", "equivalent_or_better"]


def test_every_bar_has_a_ci_and_n_small_bins_grey(result):
    intervals = result.tables["discrepancy_by_interval"]
    # a bin of one reading has no interval (not a zero-width one), and says why
    estimable = intervals["n_readings"] > 1
    assert intervals.loc[estimable, ["ci_low", "ci_high"]].notna().all().all() and (
        intervals.loc[estimable, "ci_note"] == "").all()
    assert intervals.loc[~estimable, ["ci_low", "ci_high"]].isna().all().all()
    assert intervals.loc[~estimable, "ci_note"].str.startswith("not estimable: 1 case in this estimate").all()
    bars = [t for t in result.figures["fig5c_discrepancy_by_interval"].data]
    assert [t.name for t in bars] == ["Normal template", "GPT-4o draft", "MedVersa draft"]
    for trace in bars:
        assert trace.error_y.array is not None and all(text.startswith("n=") for text in trace.text)
        for text, colour in zip(trace.text, trace.marker.color):
            assert (colour == "#c8c8c8") == (int(text.split("=")[1].split(" ")[0]) < MIN_BIN_N)
    for name in ("time_by_arm", "likert_by_arm", "preference_rates"):
        for trace in result.figures[name].data:
            assert trace.error_y.array is not None and all("n=" in text for text in trace.text), name


def test_csv_columns_are_documented(result):
    documented = pd.read_csv(result.files["columns.csv"])
    for name in TABLE_COLUMNS:
        csv = pd.read_csv(result.files[f"{name}.csv"])
        rows = documented[documented["table"] == name]
        assert list(rows["column"]) == list(csv.columns), name
        assert rows["meaning"].str.len().gt(3).all()
    assert list(pd.read_csv(result.files["skipped.csv"]).columns) == ["step", "item", "reason"]


def test_bad_input_is_named_never_a_traceback(tmp_path):
    """An arm with no readings, a reader with no template reading, and (second study) one reader per case: each is
    a named entry in skipped.csv and the report; the counts behind every estimate say what was used."""
    frames = simulate_study(n_readers=4, n_cases=9, seed=2)
    readings = frames.readings
    readings = readings[(readings["arm"] != "model")
                        & ~((readings["reader"] == "reader00") & (readings["arm"] == "template"))]
    result = analyse_frames(dataclasses.replace(frames, readings=readings), tmp_path / "a", n_resamples=100)
    skipped = pd.read_csv(result.files["skipped.csv"])
    items = set(zip(skipped["step"], skipped["item"]))
    assert ("readings", "arm model") in items and ("efficiency", "reader reader00 x arm template") in items
    report = result.files["report.html"].read_text()
    assert "arm model" in report and "reader reader00 x arm template" in report
    saved = result.tables["time_saved_by_template_use"]
    assert saved.loc[saved["top_percent"] == 100, "n_readers"].tolist() == [3]  # reader00 is named, not counted
    assert result.arms == ["template", "llm"]

    one_each = frames.readings[frames.readings["case"].str[-3:].astype(int) % 4
                               == frames.readings["reader"].str[-2:].astype(int)]
    alone = analyse_frames(dataclasses.replace(frames, readings=one_each), tmp_path / "b", n_resamples=100)
    no_peer = [s for s in alone.skipped if s.reason == "no other reader's final report of this case"]
    assert len(no_peer) == len(one_each) == 9
    summary = alone.tables["arm_summary"].set_index(["metric", "arm"])
    assert summary.xs("peer_discrepancy", level="metric")["n_readings"].tolist() == [0, 0, 0]
    assert summary.loc[("active_seconds", "template"), "n_readings"] == 3
    assert "no other reader's final report of this case" in alone.files["report.html"].read_text()


def test_preference_bad_input_is_named_and_shown_without_an_interval():
    """A comparison set with one judged case and one with unlabelled cases: each is a named skipped entry (no
    interval; counted in overall only), and the app's table says "no CI" rather than a NaN."""
    from studyapp.ui.analysis_tab import preferences_markdown

    frames = simulate_study(n_readers=3, n_cases=6, seed=2)
    judgements = simulate_outcomes(n_readers=5, n_cases=12, judges_per_pair=2, seed=3).judgements
    one_case = judgements[judgements["case"] == "case000"].assign(set="one case")
    unlabelled = judgements.assign(set="unlabelled")
    unlabelled.loc[unlabelled["case"].isin(["case001", "case002", "case003"]), "case_label"] = pd.NA
    both = pd.concat([one_case, unlabelled], ignore_index=True).assign(candidate_source="draft:model")
    result = analyse_frames(dataclasses.replace(frames, judgements=both), n_resamples=50)
    reasons = {(s.item, s.reason) for s in result.skipped if s.step == "preferences"}
    assert ("set one case", "one case: no interval can be computed") in reasons
    assert ("set unlabelled", "3 case(s) labelled neither normal nor abnormal: counted in overall only") in reasons
    assert not any(item == "set unlabelled" and "one case" in reason for item, reason in reasons)
    table = result.tables["preference_rates"].set_index(["set", "group"])
    assert table.loc[("unlabelled", "overall"), "n_cases"] == 12
    assert (table.loc[("unlabelled", "normal"), "n_cases"] + table.loc[("unlabelled", "abnormal"), "n_cases"]) == 9
    assert table.loc[("one case", "overall"), ["ci_low", "ci_high"]].isna().all()
    assert table.loc[("one case", "overall"), "ci_note"].startswith("not estimable: 1 case")
    shown = preferences_markdown(result.tables["preference_rates"])
    assert "nan" not in shown.lower() and "(95% CI not estimable (1 case))" in shown and "no cases" in shown


def test_one_reader_one_reading_per_arm_is_not_estimable(tmp_path):
    """The demo read by one new user: one reading per arm and a blinded set judged by that reader, the candidate
    always better. The CSVs have NaN bounds with the reason, and the app's summary says "95% CI not estimable (1
    reader)", never a zero-width "x to x"."""
    from studyapp.ui.analysis_tab import headline_markdown, preferences_markdown

    frames = simulate_study(n_readers=3, n_cases=6, seed=2)
    readings = frames.readings[frames.readings["reader"] == "reader00"].groupby("arm").head(1)
    judgements = simulate_outcomes(n_readers=5, n_cases=12, judges_per_pair=2, seed=3).judgements
    judgements = judgements[judgements["reader"] == judgements["reader"].iloc[0]].assign(
        set="demo", candidate_source="draft:model", candidate_outcome="better")
    result = analyse_frames(dataclasses.replace(frames, readings=readings, judgements=judgements), tmp_path,
                            n_resamples=100)
    summary = pd.read_csv(result.files["arm_summary.csv"]).set_index(["metric", "arm"])
    for metric in ("active_seconds", "template_use"):
        rows = summary.xs(metric, level="metric")
        assert rows["n_readings"].tolist() == [1, 1, 1] and rows["estimate"].notna().all()
        assert rows[["ci_low", "ci_high", "difference_ci_low", "difference_ci_high"]].isna().all().all()
        assert (rows["ci_note"] == "not estimable: 1 reader; needs >= 2 readers and >= 2 cases").all()
        assert rows["difference_ci_note"].dropna().str.startswith("not estimable: 1 reader").tolist() == [True] * 2
    preferences = pd.read_csv(result.files["preference_rates.csv"]).set_index("group")
    assert preferences.loc["overall", "equivalent_or_better"] == 1.0
    assert preferences.loc["overall", ["ci_low", "ci_high"]].isna().all()
    assert preferences.loc["overall", "ci_note"].startswith("not estimable: 1 reader")

    headline = headline_markdown(result.tables["arm_summary"], result.reference_arm)
    assert headline.count("95% CI not estimable (1 reader)") == 2 * 3 + 2 * 2 and " to " not in headline
    assert "no readings" in headline and "nan" not in headline.lower()  # no peer of a case read once
    shown = preferences_markdown(result.tables["preference_rates"])
    assert "| overall | 100.0% (95% CI not estimable (1 reader)) |" in shown and " to " not in shown
