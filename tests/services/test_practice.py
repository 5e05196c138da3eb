"""Practice cases: read first by every reader in the same screen, stored, and left out of the balanced design, the
export's counted rows and every analysis figure (the analysis says how many practice reads it left out)."""

import dataclasses

import pandas as pd
import pytest
from sqlalchemy import select

from analysis import analyse_frames
from analysis.loaders import load_study
from analysis.simulation import simulate_study
from analysis.skipped import PRACTICE_REASON, practice_reads_left_out, usable_readings
from studyapp.cli import main
from studyapp.db.models import Arm, Assignment, Case, Draft, ReaderStudy, StudyReader, User
from studyapp.db.session import open_database
from studyapp.services import design, export, practice, reading, studies
from studyapp.services.errors import InvalidInput
from studyapp.services.rowfiles import RowFileError

ARMS = ("template", "llm", "model")
LIKERT = {"confidence": 4, "mental_demand": 2}


def _study(db, n_readers=4, n_cases=8):
    with db.begin() as s:
        study = ReaderStudy(name="practice study")
        s.add(study)
        s.flush()
        arms = [Arm(study_id=study.id, code=code) for code in ARMS]
        cases = [Case(study_id=study.id, case_key=f"case{i}", study_instance_uid=f"1.2.{i}") for i in range(n_cases)]
        s.add_all(arms + cases)
        s.flush()
        s.add_all(Draft(case_id=c.id, arm_id=a.id, text=f"{c.case_key} {a.code}", source="test")
                  for c in cases for a in arms)
        for r in range(n_readers):
            user = User(username=f"reader{r}", password_hash="x")
            s.add(user)
            s.flush()
            s.add(StudyReader(study_id=study.id, user_id=user.id))


def test_practice_cases_come_first_and_stay_out_of_the_design_and_export(db):
    _study(db)
    with db.begin() as s:
        study = studies.get_study(s, "practice study")
        result = practice.set_practice(s, study, [(0, "case6"), (0, "case7"), (0, "Case7x")])
        assert result.changed == ["case6", "case7"] and result.practice == ["case6", "case7"]
        assert result.errors == [(0, "unknown case_key 'Case7x'; did you mean 'case7'?")]
        balance = design.generate_assignments(s, study, seed=5, cases_per_reader=3)
    # the balanced design covers the 6 counted cases only; every reader has 1 read per arm of them
    assert set(balance.per_case) == {f"case{i}" for i in range(6)}
    assert all(counts == {"template": 1, "llm": 1, "model": 1} for counts in balance.per_reader.values())
    assert balance.practice == ["case6", "case7"] and "practice cases (read first by every reader" in balance.format()

    with db.begin() as s:
        study = studies.get_study(s, "practice study")
        reader = s.scalar(select(User).where(User.username == "reader1"))
        items = reading.worklist(s, reader, study)
        keys = [s.get(Assignment, i.assignment_id).case.case_key for i in items]  # readers see labels, not keys
        assert [(key, i.practice) for key, i in zip(keys, items)][:2] == [("case6", True), ("case7", True)]
        assert [i.position for i in items] == [1, 2, 3, 4, 5] and not any(i.practice for i in items[2:])
        # a counted case cannot be opened before the practice set is done
        with pytest.raises(InvalidInput, match=r"practice cases first: 2 practice case\(s\) not submitted yet"):
            reading.open_case(s, reader, items[2].assignment_id)
        for key, item in zip(keys[:2], items[:2]):
            screen = reading.open_case(s, reader, item.assignment_id)
            assert screen.practice
            reading.submit(s, reader, item.assignment_id, f"practice {key}", 1.0, LIKERT)
        screen = reading.open_case(s, reader, items[2].assignment_id)
        assert not screen.practice
        reading.submit(s, reader, items[2].assignment_id, "counted read", 1.0, LIKERT)
        # once reading started, practice cases are fixed
        with pytest.raises(InvalidInput, match="already has 3 opened report"):
            practice.set_practice(s, study, [(0, "case0")])

    with db() as s:
        study = studies.get_study(s, "practice study")
        table = export.reads_table(s, study)
        progress = export.progress_table(s, study).set_index("reader")
    assert table["practice"].sum() == 8  # 4 readers x 2 practice cases, flagged
    counted = table[~table["practice"]]
    assert len(counted) == 12 and set(counted["case_key"]) == {f"case{i}" for i in range(6)}
    submitted = table[table["status"] == "submitted"].set_index("case_key")
    assert submitted.loc["case6", "practice"] and submitted.loc["case6", "final_text"] == "practice case6"
    assert progress.loc["reader1", ["assigned", "submitted", "practice_submitted"]].tolist() == [3, 1, 2]

    frames = load_study(db, "practice study")
    usable, skipped = usable_readings(frames.readings)
    assert usable["case"].tolist() == [keys[2]]
    assert practice_reads_left_out(skipped) == 8
    assert sum(s.reason == PRACTICE_REASON for s in skipped) == 8


def test_practice_changes_remove_an_unopened_design_and_need_an_existing_case(db):
    _study(db)
    with db.begin() as s:
        study = studies.get_study(s, "practice study")
        design.generate_assignments(s, study, seed=1, cases_per_reader=3)
        result = practice.set_practice(s, study, [(0, "case0")])
        assert result.removed_assignments == 12 and "generate the assignments again" in result.summary()
        assert s.scalar(select(Assignment).where(Assignment.study_id == study.id)) is None
        again = practice.set_practice(s, study, [(0, "case0")])
        assert again.changed == [] and again.unchanged == ["case0"] and again.removed_assignments == 0
        assert practice.set_practice(s, study, [(0, "case0")], practice=False).practice == []
        with pytest.raises(InvalidInput, match="no case_key given"):
            practice.set_practice(s, study, [])


def test_practice_list_files_and_the_command_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = open_database(url)
    _study(db)
    good = tmp_path / "practice.csv"
    good.write_text("case_key\ncase1\n\nnot-a-case\ncase2\n", encoding="utf-8")
    with db.begin() as s:
        result = practice.import_practice_list(s, studies.get_study(s, "practice study"), good)
    assert result.practice == ["case1", "case2"] and [line for line, _ in result.errors] == [4]
    with db.begin() as s:
        study = studies.get_study(s, "practice study")
        with pytest.raises(RowFileError, match="must be a .csv or .jsonl"):
            practice.import_practice_list(s, study, tmp_path / "practice.txt")
        wrong = tmp_path / "wrong.csv"
        wrong.write_text("case\ncase1\n", encoding="utf-8")
        with pytest.raises(InvalidInput, match="wrong.csv: line 1"):
            practice.import_practice_list(s, study, wrong)

    assert main(["--database", url, "mark-practice", "practice study", "case3", "case1", "--unmark"]) == 0
    assert main(["--database", url, "mark-practice", "practice study", "nope"]) == 1
    assert main(["--database", url, "mark-practice", "practice study", "case5", "--file", str(good)]) == 1
    with db() as s:
        assert practice.practice_case_keys(s, studies.get_study(s, "practice study")) == ["case2"]


def test_practice_reads_change_no_analysis_figure():
    frames = simulate_study(seed=1)
    baseline = analyse_frames(frames, n_resamples=20)
    first = frames.readings.groupby("reader", as_index=False).first()
    practice_rows = first.assign(practice=True, case="practice-case", active_seconds=5000.0,
                                 assignment_id=first["assignment_id"] + 100_000)
    practice_likert = practice_rows[["assignment_id", "reader", "case", "arm"]].assign(
        question="confidence", value=1, scale_min=1, scale_max=5)
    with_practice = dataclasses.replace(frames, readings=pd.concat([frames.readings, practice_rows], ignore_index=True),
                                        likert=pd.concat([frames.likert, practice_likert], ignore_index=True))
    result = analyse_frames(with_practice, n_resamples=20)
    assert practice_reads_left_out(result.skipped) == len(practice_rows) == 10
    assert "practice-case" not in set(result.tables["readings"]["case"])
    for name in ("arm_summary", "likert_summary", "reader_arm"):
        pd.testing.assert_frame_equal(result.tables[name], baseline.tables[name])
    for name, figure in result.figures.items():
        assert figure.to_json() == baseline.figures[name].to_json(), name


def test_fewer_counted_cases_than_arms_is_refused_with_what_to_do(db):
    """4 cases, 2 of them practice, 3 arms (the README's study): no count per reader fits; the refusal says why and
    what the coordinator can do."""
    _study(db, n_readers=2, n_cases=4)
    with db.begin() as s:
        study = studies.get_study(s, "practice study")
        practice.set_practice(s, study, [(0, "case2"), (0, "case3")])
        for cases_per_reader in (None, 1, 2, 3):
            with pytest.raises(design.DesignError) as refused:
                design.generate_assignments(s, study, seed=1, cases_per_reader=cases_per_reader)
            assert str(refused.value) == (
                "study 'practice study' has 2 counted case(s), fewer than its 3 arms: each reader reads every arm, "
                "so the design needs at least 3 counted cases; import more cases or make some of its 2 practice "
                "cases counted again (mark-practice --unmark)")
        practice.set_practice(s, study, [(0, "case3")], practice=False)
        assert design.generate_assignments(s, study, seed=1, cases_per_reader=3).per_case.keys() == {
            "case0", "case1", "case3"}
