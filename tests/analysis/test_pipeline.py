"""The whole analysis on a simulated 10 reader x 75 case study with known effects: the model arm saves exactly
30 s per case for the five high template users and nothing for the others; confidence +1 and mental demand -1
in the model arm; nothing in the llm arm. Estimates must recover the effects and the 95% CIs cover them."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import analyse_frames
from analysis.findings import LEXICON_VERSION
from analysis.pipeline import TABLE_COLUMNS
from analysis.simulation import simulate_study


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return analyse_frames(simulate_study(seed=1), tmp_path_factory.mktemp("analysis"))


def _covers(row, truth):
    return row["ci_low"] <= truth <= row["ci_high"]


def test_time_saved_by_template_use_recovers_the_known_effect(result):
    table = result.tables["time_saved_by_template_use"].set_index(["arm", "top_percent"])
    # 30 s per case = 50 minutes per 100 studies for each high user; the top 50% are exactly the high users
    for k in (10, 20, 30, 40, 50):
        assert _covers(table.loc[("model", k)], 50.0), k
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
    assert result.reference_arm == "template" and result.skipped == []


def test_every_reading_has_a_peer_discrepancy(result):
    readings = result.tables["readings"]
    assert readings["peer_discrepancy"].notna().all()
    assert len(result.tables["peer_pairs"]) == 75 * 10 * 9
    assert set(readings["similarity_measure"]) == {result.similarity_measure}
    assert result.judge == f"offline-negex {LEXICON_VERSION}"


def test_figures_are_written_and_png_decodes(result):
    assert set(result.figures) == {"fig5b_discrepancy_matrix", "fig5c_discrepancy_by_interval",
                                   "fig5d_template_use", "fig5e_time_saved", "time_by_arm", "likert_by_arm"}
    for name in result.figures:
        html, png = result.files[f"{name}.html"], result.files[f"{name}.png"]
        assert html.stat().st_size > 1000 and "plotly" in html.read_text()
        with Image.open(png) as image:
            image.load()
            assert image.size == (1200, 700)
            assert np.unique(np.asarray(image.convert("L"))).size > 10  # drawn, not blank
    report = result.files["report.html"].read_text()
    assert all(name in report for name in result.figures) and "Skipped items" in report


def test_csv_columns_are_documented(result):
    documented = pd.read_csv(result.files["columns.csv"])
    for name in TABLE_COLUMNS:
        csv = pd.read_csv(result.files[f"{name}.csv"])
        rows = documented[documented["table"] == name]
        assert list(rows["column"]) == list(csv.columns), name
        assert rows["meaning"].str.len().gt(3).all()
    assert list(pd.read_csv(result.files["skipped.csv"]).columns) == ["step", "item", "reason"]
