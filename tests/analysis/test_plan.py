"""Power and sample size (analysis.plan, analysis.plan_assumptions, ``python -m analysis plan``, bench/power.py): the
assumptions become the simulator's effects exactly, impossible assumptions are refused by name, the plan's power
agrees with the full analysis's rejection rate on independent studies, a pilot study in a database gives the
assumptions, and the outputs record the assumptions and seed."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.__main__ import main as analysis_main
from analysis.pipeline import analyse_frames
from analysis.plan import (
    interval_warnings, plan_study, primary_intervals, smallest_designs, summarise, write_plan)
from analysis.plan_assumptions import (
    AssumptionError, assumed_effects, assumptions_from_pilot, crossed_effects, load_assumptions, resolve_assumptions)
from analysis.simulation import crossed_truth, simulate_outcomes, simulate_study, write_study
from studyapp.db.session import open_database

ROOT = Path(__file__).resolve().parents[2]
TINY = {"design": {"readers": [4], "cases": [12]}, "simulation": {"reps": 4, "resamples": 20}}


def test_defaults_are_the_papers_magnitudes_and_become_the_simulators_truth():
    assumptions = load_assumptions()
    assert assumptions["arms"] == ["template", "llm", "model"]
    assert assumptions["preference"]["equivalent_or_better"] == {"normal": 0.95, "abnormal": 0.58}
    effects = crossed_effects(assumptions)
    truth = crossed_truth(effects, normal_share=assumptions["preference"]["normal_share"])
    assumed = assumed_effects(assumptions).set_index(["comparison", "arm"])["assumed"]
    # the paper's 71% overall from 95% normal, 58% abnormal and a 35% normal share
    assert truth[("preference", "per case", "overall")] == pytest.approx(assumed[("preference", "candidate")])
    assert round(assumed[("preference", "candidate")], 2) == 0.71
    assert truth[("preference", "per case", "normal")] == pytest.approx(0.95)
    for arm, minutes in (("model", 30.0), ("llm", -20.0)):
        assert truth[("saved", "saved_minutes_per_100", arm, 100)] == pytest.approx(minutes)
    assert truth[("difference", "peer_discrepancy", "model", 0)] == pytest.approx(-0.1)
    assert effects.reader_sd == 60.0 and effects.saving_sd == 15.0


@pytest.mark.parametrize("overrides, named", [
    ({"time": {"variance": {"reader": -1.0}}}, "time.variance.reader = -1.0: a variance cannot be negative"),
    ({"preference": {"probit_variance": {"pair": -0.5}}}, "preference.probit_variance.pair"),
    ({"design": {"cases": [30, 60], "cases_per_reader": 45}}, "design.cases_per_reader = 45: more cases per "
                                                                "reader than the 30 cases"),
    ({"test": {"alpha": 1.5}}, "test.alpha = 1.5: must be in (0, 1)"),
    ({"test": {"alpha": 0}}, "test.alpha = 0: must be in (0, 1)"),
    ({"preference": {"judges_per_pair": 5}, "design": {"readers": [4, 8]}}, "more judges per pair than the 4"),
    ({"time": {"saved_minutes_per_100": {"model": 30}}}, "needs exactly the arms ['llm', 'model']"),
    ({"time": {"saved_minutes_per_100": {"llm": 0, "model": 700}}}, "saves more than the 360 s"),
    ({"arms": ["template", "template"]}, "need at least 2 distinct arms"),
    ({"preference": {"threshold": 1.0}}, "preference.threshold = 1.0"),
    ({"time": {"variance": {"raeder": 1.0}}}, "time.variance.raeder: unknown assumption"),
    ({"design": {"readers": [1, 4]}}, "design.readers = 1"),
    # the study app's balanced design: each reader's cases a multiple of the arms (3)
    ({"design": {"cases": [30], "cases_per_reader": 10}}, "design.cases_per_reader = 10: not a multiple of the 3 arms"),
    ({"design": {"cases": [30, 31, 44, 45]}}, "design.cases = [31, 44]: every reader reads every case"),
    ({"arms": ["template", "model"], "time": {"saved_minutes_per_100": {"model": 30}},
      "discrepancy": {"per_report": {"template": 0.5, "model": 0.4}}, "design": {"cases": [30, 45]}},
     "design.cases = [45]: "),
])
def test_impossible_assumptions_are_named(overrides, named):
    with pytest.raises(AssumptionError) as error:
        load_assumptions(overrides=overrides)
    assert named in str(error.value)


def test_command_refuses_impossible_assumptions_by_name(tmp_path, capsys):
    stated = tmp_path / "assumptions.yaml"
    stated.write_text(yaml.safe_dump({"time": {"variance": {"case": -25}}}))
    assert analysis_main(["plan", "--assumptions", str(stated), "--out", str(tmp_path / "out")]) == 1
    assert "time.variance.case = -25: a variance cannot be negative" in capsys.readouterr().err
    assert analysis_main(["plan", "--alpha", "1.2", "--out", str(tmp_path / "out")]) == 1
    assert "test.alpha = 1.2: must be in (0, 1)" in capsys.readouterr().err
    assert analysis_main(["plan", "--cases", "20,40", "--cases-per-reader", "30", "--out",
                          str(tmp_path / "out")]) == 1
    assert "more cases per reader than the 20 cases" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, named", [
    (b"design:\n  readers: [4, 6\n  cases: [30]\n", "expected ',' or ']', but got ':' at line 3, column 8"),
    (b"design:\n  readers: [4]\n cases: [30]\n", "expected <block end>, but found '<block mapping start>' at line 3"),
    ("time:\n  reference_seconds: 360 # M\u00e9dVersa\n".encode("latin-1"), "not UTF-8 text ('utf-8' codec can't "
                                                                         "decode byte 0xe9 in position 34"),
])
def test_unreadable_assumptions_file_is_named_in_one_line(tmp_path, capsys, content, named):
    stated = tmp_path / "assumptions.yaml"
    stated.write_bytes(content)
    assert analysis_main(["plan", "--assumptions", str(stated), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: assumptions file {stated}: {named}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_plan_does_not_depend_on_the_workers_and_records_assumptions_and_seed(tmp_path):
    assumptions, sources = resolve_assumptions([("test", TINY)])
    one = plan_study(assumptions, workers=1)
    two = plan_study(assumptions, workers=2, sources=sources)
    pd.testing.assert_frame_equal(one.power, two.power)
    assert len(two.studies) == 4 * 5 and set(two.power["reps"]) == {4}
    files = write_plan(two, tmp_path)
    record = json.loads(files["plan.json"].read_text())
    assert record["seed"] == 0 and record["alpha"] == 0.05 and record["assumptions"] == assumptions
    assert record["sources"]["design.readers"] == "test"
    assert record["sources"]["time.variance.reader"].startswith("defaults")
    assert yaml.safe_load(files["assumptions.yaml"].read_text()) == assumptions
    assert pd.read_csv(files["power.csv"]).shape == (5, 13)
    assert "plotly" in files["power_curve.html"].read_text()[:5000].lower()


def test_power_grows_with_the_design_and_the_smallest_design_reaches_the_target():
    assumptions = load_assumptions(overrides={"design": {"readers": [4, 8], "cases": [12, 60]},
                                              "simulation": {"reps": 12, "resamples": 30}})
    plan = plan_study(assumptions, workers=2)
    preference = plan.power[plan.power["comparison"] == "preference"].set_index(["readers", "cases"])["power"]
    assert preference[(8, 60)] >= preference[(4, 12)] + 0.3  # 12 vs 60 pairs of a 71% rate against 50%
    best = plan.smallest.set_index("comparison").loc["preference"]
    reached = plan.power[(plan.power["comparison"] == "preference") & (plan.power["power"] >= 0.8)]
    assert best["readings"] == (reached["readers"] * reached["cases_per_reader"]).min()
    # a grid where nothing reaches the target says so
    none = smallest_designs(plan.power.assign(power=0.1), 0.8)
    assert none["readers"].isna().all()


def test_comparison_without_intervals_is_not_estimable_not_underpowered(tmp_path, capsys):
    """6 cases per reader, 2 per arm: the discrepancy model gives no interval in any 4-reader study."""
    out = tmp_path / "out"
    assert analysis_main(["plan", "--readers", "4", "--cases", "30", "--cases-per-reader", "6", "--reps", "3",
                          "--resamples", "20", "--workers", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    for arm in ("llm", "model"):
        assert (f"warning: discrepancy {arm}, 4 readers x 30 cases (6 per reader): no interval in 3 of 3 simulated "
                "studies (not estimable)") in captured.err
        assert f"discrepancy {arm}: not estimable in any design of the grid" in captured.out
    assert "warning: time saved" not in captured.err and "warning: preference" not in captured.err
    power = pd.read_csv(out / "power.csv").set_index(["comparison", "arm"])
    assert power.loc[("discrepancy", "model"), "power"] != power.loc[("discrepancy", "model"), "power"]  # NaN
    assert list(power["no_interval"]) == [0, 0, 3, 3, 0] and (power["reps"] == 3).all()
    assert power.loc[("preference", "candidate"), "power"] >= 0
    record = json.loads((out / "plan.json").read_text())
    assert len(record["no_interval"]) == 2 and "(not estimable)" in record["no_interval"][0]
    smallest = pd.read_csv(out / "smallest.csv").set_index("comparison")
    assert smallest.loc["discrepancy", "estimable_designs"].tolist() == [0, 0]
    assert pd.isna(smallest.loc["all", "readers"])  # a design with a comparison not estimable shows not all


def test_some_studies_without_an_interval_are_counted_and_not_shown():
    rows = [{"readers": 4, "cases": 30, "cases_per_reader": 6, "rep": rep, "comparison": "time saved", "arm": "model",
             "estimate": 30.0, "ci_low": low, "ci_high": 50.0 if low == low else float("nan"), "assumed": 30.0,
             "null": 0.0} for rep, low in enumerate([10.0, -5.0, 12.0, float("nan")])]
    studies = pd.DataFrame(rows)
    studies["shown"] = studies["ci_low"] > 0
    power = summarise(studies)
    assert power.loc[0, "power"] == 0.5 and power.loc[0, "no_interval"] == 1 and power.loc[0, "reps"] == 4
    assert interval_warnings(power) == ["time saved model, 4 readers x 30 cases (6 per reader): no interval in 1 of 4 "
                                        "simulated studies (counted as not shown)"]
    assert smallest_designs(power, 0.5).set_index("comparison").loc["time saved", "estimable_designs"] == 1


def test_plan_power_equals_the_analysis_rejection_rate_within_monte_carlo_error():
    """bench/power.py at a small size: 30 studies of 6 readers x 30 cases on each side."""
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "power.py"), "--designs", "6x30", "--reps", "30",
                          "--resamples", "50", "--workers", "2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "agree within Monte Carlo error (z <= 3): all" in run.stdout
    rows = {(m.group(1), m.group(2)): (float(m.group(3)), float(m.group(4)))
            for m in re.finditer(r"6x30\s+(time saved|discrepancy|preference)\s+(\w+)\s+\S+\s+\S+\s+([\d.]+)\s+\S+\s+"
                                 r"([\d.]+)", run.stdout)}
    assert len(rows) == 5
    plan_power, analysis_rate = rows[("preference", "candidate")]
    assert plan_power > 0.5 and analysis_rate > 0.4  # a 71% rate against 50% on 30 pairs is often shown


def test_pilot_study_gives_the_assumptions(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'pilot.db'}")
    write_study(sessions, simulate_study(n_readers=4, n_cases=12, seed=5, name="Pilot"))
    layer = assumptions_from_pilot(sessions, "Pilot")
    assert layer["arms"] == ["template", "llm", "model"]
    # simulate_study: high template users (half the readers) save 30 s per case with the model draft
    assert 10 < layer["time"]["saved_minutes_per_100"]["model"] < 45
    assert abs(layer["time"]["saved_minutes_per_100"]["llm"]) < 15
    assert layer["time"]["variance"]["reader"] > layer["time"]["variance"]["residual"] > 0
    assert 200 < layer["time"]["reference_seconds"] < 300
    assert set(layer["discrepancy"]["per_report"]) == {"template", "llm", "model"}
    assumptions, sources = resolve_assumptions([("pilot study 'Pilot'", layer), ("test", TINY)])
    assert sources["time.saved_minutes_per_100"] == "pilot study 'Pilot'"
    assert sources["preference.threshold"].startswith("defaults")  # no comparison set in this pilot
    with pytest.raises(LookupError):
        assumptions_from_pilot(sessions, "No such study")


def test_command_with_a_pilot_study_writes_the_outputs(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'pilot.db'}"
    write_study(open_database(url), simulate_study(n_readers=4, n_cases=12, seed=5, name="Pilot"))
    out = tmp_path / "plan"
    assert analysis_main(["plan", "--database", url, "--study", "Pilot", "--readers", "4", "--cases", "12",
                          "--reps", "3", "--resamples", "20", "--workers", "1", "--seed", "7", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "smallest design with power >= 0.8" in printed.out and "3/3" in printed.err
    record = json.loads((out / "plan.json").read_text())
    assert record["seed"] == 7 and record["sources"]["time.reference_seconds"] == "pilot study 'Pilot'"
    assert analysis_main(["plan", "--database", url, "--study", "Missing", "--out", str(out)]) == 1
    assert "Missing" in capsys.readouterr().err


def test_cases_per_reader_design():
    """Each reader reads k consecutive cases, so the arms stay balanced per reader; a case with one reader has no
    peer discrepancy; the plan records k and counts readings as readers x k."""
    sim = simulate_outcomes(n_readers=4, n_cases=24, seed=2, cases_per_reader=6)
    readings = sim.readings
    assert readings.groupby("reader").size().tolist() == [6, 6, 6, 6]
    assert (readings.groupby(["reader", "arm"]).size() == 2).all()
    assert readings["case"].nunique() == 24 and readings["peer_discrepancy"].isna().all()  # one reader per case
    with pytest.raises(ValueError, match="cases_per_reader=30 must be in 1..n_cases=24"):
        simulate_outcomes(n_readers=4, n_cases=24, cases_per_reader=30)
    assumptions = load_assumptions(overrides={"design": {"readers": [4], "cases": [12], "cases_per_reader": 9},
                                              "simulation": {"reps": 3, "resamples": 20}})
    plan = plan_study(assumptions)
    assert set(plan.power["cases_per_reader"]) == {9}
    assert plan.smallest["readings"].dropna().isin([36]).all()


def test_plan_intervals_are_the_ones_the_analysis_reports():
    """On one study, the plan's analysis (primary_intervals at 95%) gives exactly the intervals the full pipeline
    reports for the same comparisons with the same resamples: time saved by all readers, the peer discrepancy
    difference and the per-case preference rate. A change to how the analysis computes them that the plan did not
    follow fails here."""
    judgements = simulate_outcomes(n_readers=4, n_cases=12, judges_per_pair=2, seed=3).judgements
    frames = dataclasses.replace(simulate_study(n_readers=4, n_cases=12, seed=6, name="Same"),
                                 judgements=judgements.assign(set="blinded", candidate_source="draft:model"))
    result = analyse_frames(frames, n_resamples=60, seed=11)
    readings = result.tables["readings"]
    mine = primary_intervals(readings, judgements, ["template", "llm", "model"], 0.95, 60, 11).set_index(
        ["comparison", "arm"])
    saved = result.tables["time_saved_by_template_use"].set_index(["arm", "top_percent"])
    summary = result.tables["arm_summary"].set_index(["metric", "arm"])
    preference = result.tables["preference_rates"].set_index("group").loc["overall"]
    for arm in ("llm", "model"):
        assert mine.loc[("time saved", arm), ["ci_low", "ci_high"]].tolist() == pytest.approx(
            saved.loc[(arm, 100), ["ci_low", "ci_high"]].tolist(), rel=1e-9)
        assert mine.loc[("discrepancy", arm), ["ci_low", "ci_high"]].tolist() == pytest.approx(
            summary.loc[("peer_discrepancy", arm), ["difference_ci_low", "difference_ci_high"]].tolist(), rel=1e-9)
    low, high = mine.loc[("preference", "candidate"), ["ci_low", "ci_high"]]
    assert [max(low, 0.0), min(high, 1.0)] == pytest.approx([preference["ci_low"], preference["ci_high"]], rel=1e-9)
