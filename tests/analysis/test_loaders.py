"""The loader on real database rows, and the analysis of a study with bad input: unsubmitted readings, a
submitted empty report, a reader with no usable case in an arm, a missing Likert answer."""

import pandas as pd
import pytest
from sqlalchemy import select

from analysis import run_analysis
from analysis.__main__ import main
from analysis.loaders import LIKERT_COLUMNS, READING_COLUMNS, load_study
from analysis.simulation import ARM_LABELS, simulate_study, write_study
from analysis.skipped import practice_judgements_left_out, practice_reads_left_out
from studyapp.db.models import Arm, Assignment, Case, Draft, ReaderStudy, Report, User
from studyapp.services import comparisons, judging


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
    assert loaded.arm_labels == ARM_LABELS and loaded.arm_label("model") == "MedVersa draft"
    assert loaded.judgements.empty


def test_comparison_judgements_reach_the_report(small, tmp_path):
    """A blinded comparison set judged by every reader, one of whom has not submitted: the loader reads every
    judgement with its candidate outcome, the analysis counts the submitted ones per case and names the others."""
    db, _, _ = small
    with db.begin() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == "small study"))
        cset = comparisons.create_comparison_set(session, study, "blinded", "draft:template", "draft:model",
                                                 "draft:model", seed=1, readers_per_pair=3)
        comparisons.assign_readers(session, cset)
        readers = [session.scalar(select(User).where(User.username == f"reader{i:02d}")) for i in range(3)]
        for index, reader in enumerate(readers):
            for pair in judging.blinded_pairs(session, reader, cset.id):
                judging.save_judgement(session, reader, pair.pair_id, "equivalent" if index else "A")
            if index < 2:
                judging.submit_comparison_set(session, reader, cset.id)
    loaded = load_study(db, "small study")
    judgements = loaded.judgements
    assert len(judgements) == 18 and set(judgements["set"]) == {"blinded"}
    assert judgements.groupby("reader")["submitted"].first().tolist() == [True, True, False]
    assert set(judgements.loc[judgements["reader"] != "reader00", "candidate_outcome"]) == {"equivalent"}
    result = run_analysis(db, "small study", tmp_path, n_resamples=100)
    rates = result.tables["preference_rates"].set_index("group")
    assert rates.loc["overall", ["n_cases", "n_judgements", "n_readers"]].tolist() == [6, 12, 2]
    first = judgements[judgements["reader"] == "reader00"].set_index("case")["candidate_outcome"]
    assert rates.loc["overall", "equivalent_or_better"] == pytest.approx(((first != "worse") + 1).mean() / 2)
    assert ("preferences", "set blinded x reader reader02") in {(s.step, s.item) for s in result.skipped}
    report = result.files["report.html"].read_text()
    assert "<h2>Blinded comparison: preference rates</h2>" in report and "set blinded x reader reader02" in report


def test_practice_judgements_never_count_in_preference_rates(small, tmp_path):
    """A set created with "include practice cases" (case005 is a practice case, judged 'worse' by every reader) has
    the preference rates of the same judgements in a set without it; skipped.csv and the report name the left-out
    practice judgements, and the third reader's unsubmitted entry counts only the others."""
    db, _, _ = small
    outcomes = ("better", "equivalent", "worse")
    with db.begin() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == "small study"))
        next(c for c in study.cases if c.case_key == "case005").is_practice = True
        session.flush()
        model = {d.case_id: d.text for d in session.scalars(select(Draft).join(Arm).where(Arm.code == "model"))}
        keys = {c.id: c.case_key for c in study.cases}
        readers = [session.scalar(select(User).where(User.username == f"reader{i:02d}")) for i in range(3)]
        for name, include in (("with practice", True), ("without practice", False)):
            cset = comparisons.create_comparison_set(session, study, name, "draft:template", "draft:model",
                                                     "draft:model", seed=1, readers_per_pair=3,
                                                     include_practice=include)
            comparisons.assign_readers(session, cset)
            for index, reader in enumerate(readers):
                for pair in judging.blinded_pairs(session, reader, cset.id):
                    key = keys[pair.case_id]
                    outcome = "worse" if key == "case005" else outcomes[(int(key[-3:]) + index) % 3]
                    candidate = "A" if pair.text_a == model[pair.case_id] else "B"
                    choice = {"better": candidate, "equivalent": "equivalent",
                              "worse": "B" if candidate == "A" else "A"}[outcome]
                    judging.save_judgement(session, reader, pair.pair_id, choice)
                if index < 2:
                    judging.submit_comparison_set(session, reader, cset.id)
    loaded = load_study(db, "small study").judgements
    assert loaded.groupby("set")["practice"].sum().to_dict() == {"with practice": 3, "without practice": 0}
    assert set(loaded.loc[loaded["practice"], "candidate_outcome"]) == {"worse"}

    result = run_analysis(db, "small study", tmp_path, n_resamples=100)
    rates = result.tables["preference_rates"].set_index(["set", "group"])
    numbers = ["n_cases", "n_judgements", "n_readers", "better", "equivalent", "worse", "equivalent_or_better",
               "per_judgement_equivalent_or_better"]
    with_practice, without = rates.loc["with practice", numbers], rates.loc["without practice", numbers]
    pd.testing.assert_frame_equal(with_practice, without)
    # case000..case004, readers 0 and 1: outcome (case + reader) % 3, so each case has one 'worse' in two or none
    good = [sum(outcomes[(c + r) % 3] != "worse" for r in range(2)) / 2 for c in range(5)]
    assert with_practice.loc["overall", ["n_cases", "n_judgements", "n_readers"]].tolist() == [5, 10, 2]
    assert with_practice.loc["overall", "equivalent_or_better"] == pytest.approx(sum(good) / 5)
    if_counted = ((loaded["set"] == "with practice") & loaded["submitted"]
                             & (loaded["candidate_outcome"] != "worse")).sum() / 12
    assert with_practice.loc["overall", "per_judgement_equivalent_or_better"] != pytest.approx(if_counted)

    entry = ("preferences", "set with practice", "practice case: 3 judgement(s) left out, never counted")
    skipped = pd.read_csv(result.files["skipped.csv"])
    assert entry in set(skipped.itertuples(index=False, name=None))
    assert not skipped["item"].eq("set without practice").any()
    assert ("preferences", "set with practice x reader reader02", "5 judgement(s): the set is not submitted") in set(
        skipped.itertuples(index=False, name=None))
    assert practice_judgements_left_out(result.skipped) == 3 and practice_reads_left_out(result.skipped) == 3
    report = result.files["report.html"].read_text()
    assert "practice case: 3 judgement(s) left out, never counted" in report
    assert "practice judgements left out of the preference rates: 3" in report


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
