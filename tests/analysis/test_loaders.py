"""The loader on real database rows, and the analysis of a study with bad input: unsubmitted readings, a
submitted empty report, a reader with no usable case in an arm, a missing Likert answer."""

import pandas as pd
import pytest
from sqlalchemy import select

from analysis import run_analysis
from analysis.__main__ import main
from analysis.loaders import LIKERT_COLUMNS, READING_COLUMNS, load_study
from analysis.simulation import simulate_study, write_study
from studyapp.db.models import Assignment, Case, Report, User


@pytest.fixture()
def small(db):
    """A 3 reader x 6 case study written to the database; returns (session factory, frames)."""
    frames = simulate_study(n_readers=3, n_cases=6, seed=3, name="small study")
    study_id = write_study(db, frames)
    return db, frames, study_id


def test_load_study_round_trips_rows(small):
    db, frames, study_id = small
    loaded = load_study(db, "small study")
    assert loaded.study_name == "small study" and loaded.arms == ("template", "llm", "model")
    assert list(loaded.readings.columns) == list(READING_COLUMNS)
    assert list(loaded.likert.columns) == list(LIKERT_COLUMNS)
    columns = ["reader", "case", "case_label", "arm", "position", "status", "draft_text", "final_text"]
    expected = frames.readings.sort_values(["reader", "position"])[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded.readings[columns].reset_index(drop=True), expected)
    assert loaded.readings["active_seconds"].round(6).tolist() == (
        frames.readings.sort_values(["reader", "position"])["active_seconds"].round(6).tolist())
    assert len(loaded.likert) == 18 * 2 and set(loaded.likert["scale_max"]) == {5}
    assert load_study(db, study_id).study_name == "small study"


def test_unknown_study_names_the_existing_ones(small):
    db, _, _ = small
    with pytest.raises(LookupError, match=r"no reader study 'nope'.*small study"):
        load_study(db, "nope")


def _report(session, reader, case):
    return session.scalar(select(Report).join(Assignment).join(User, Assignment.reader_id == User.id)
                          .join(Case, Assignment.case_id == Case.id)
                          .where(User.username == reader, Case.case_key == case))


def _damage(db, frames):
    """reader02's two llm readings made unusable (one in progress, one submitted with an empty final text);
    reader00 misses the confidence answer of its first case."""
    readings = frames.readings
    llm_cases = readings[(readings["reader"] == "reader02") & (readings["arm"] == "llm")]["case"].tolist()
    with db.begin() as session:
        in_progress = _report(session, "reader02", llm_cases[0])
        in_progress.status, in_progress.final_text = "in_progress", None
        _report(session, "reader02", llm_cases[1]).final_text = "   "
        first = _report(session, "reader00", "case000")
        session.delete(next(a for a in first.answers if a.question == "confidence"))


def test_bad_input_is_skipped_and_listed(small, tmp_path):
    db, frames, _ = small
    _damage(db, frames)
    result = run_analysis(db, "small study", None, n_resamples=200)
    reasons = {(s.step, s.item, s.reason) for s in result.skipped}
    llm_items = [s for s in result.skipped if s.step == "readings"]
    assert sorted(s.reason for s in llm_items) == ["not submitted (status in_progress)",
                                                   "submitted without a final report text"]
    assert ("efficiency", "reader reader02 x arm llm",
            "no usable reading in this arm: no time saved or template use for it") in reasons
    assert any(s.step == "experience" and s.reason == "no answer to Likert question confidence"
               and s.item.startswith("reader reader00") for s in result.skipped)
    summary = result.tables["arm_summary"].set_index(["metric", "arm"])
    assert summary.loc[("active_seconds", "llm"), "n_readings"] == 4
    assert summary.loc[("likert_confidence", "template"), "n_readings"] == 5
    assert len(result.tables["readings"]) == 16
    reader_arm = result.tables["reader_arm"]
    assert not ((reader_arm["reader"] == "reader02") & (reader_arm["arm"] == "llm")).any()
    stratified = result.tables["time_saved_by_template_use"]
    assert set(stratified.loc[stratified["arm"] == "llm", "n_readers"]) <= {1, 2}


def test_study_without_usable_readings_is_an_error(db):
    frames = simulate_study(n_readers=2, n_cases=3, name="empty")
    frames.readings["status"] = "new"
    write_study(db, frames)
    with pytest.raises(ValueError, match="no usable reading.*not submitted"):
        run_analysis(db, "empty", None)


def test_command_line(small, tmp_path, capsys):
    db, _, _ = small
    url = str(db.kw["bind"].url)
    out = tmp_path / "out"
    assert main(["--database", url, "--study", "small study", "--out", str(out), "--resamples", "50"]) == 0
    assert (out / "report.html").stat().st_size > 10_000 and (out / "figures" / "fig5e_time_saved.png").is_file()
    assert "skipped items: 0" in capsys.readouterr().out
    # exit status as the app's commands: 1 for a refused action, 2 for a usage error
    assert main(["--database", url, "--study", "other", "--out", str(out)]) == 1
    assert "no reader study 'other'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["--database", url, "--study", "small study", "--out", str(out), "--judge", "llm"])
    assert usage.value.code == 2
