"""Configurable post-report questions: definitions checked, answers validated and stored with their definition,
one export column per question, the set frozen once answered, choice questions summarised by arm, the CLI."""

import json

import pytest

from analysis.experience import choice_summary
from analysis.loaders import load_study
from studyapp import cli
from studyapp.db.models import Assignment, Case, Draft, QuestionAnswer
from studyapp.services import accounts, export, questions, reading, studies
from studyapp.services.errors import InvalidInput

QUESTIONS = [
    {"code": "quality", "kind": "likert", "question": "Image quality?", "min": 0, "max": 3,
     "labels": ["non-diagnostic", "poor", "fair", "good"]},
    {"code": "finding", "kind": "single_choice", "question": "Main finding?", "choices": ["none", "effusion", "mass"]},
    {"code": "signs", "kind": "multiple_choice", "question": "Signs seen?", "choices": ["a", "b", "c"],
     "required": False},
    {"code": "follow_up", "kind": "yes_no", "question": "Recommend follow-up?"},
    {"code": "size", "kind": "number", "question": "Largest lesion?", "unit": "mm", "min": 0, "required": False},
    {"code": "note", "kind": "text", "question": "Anything else?", "required": False, "max_chars": 20},
]


@pytest.fixture()
def setup(db):
    """Study 's1' with cases C1, C2; reader1 reads C1 under 'llm' and C2 under 'model'."""
    with db.begin() as s:
        study = studies.create_study(s, "s1", template_text="Normal chest.")
        arms = {a.code: a for a in study.arms}
        reader = accounts.add_user(s, "reader1", "orbit-lantern-1")
        accounts.enroll_reader(s, study, reader)
        ids = []
        for position, (key, arm) in enumerate((("C1", "llm"), ("C2", "model")), start=1):
            case = Case(study_id=study.id, case_key=key, study_instance_uid=f"1.2.{position}")
            s.add(case)
            s.flush()
            s.add(Draft(case_id=case.id, arm_id=arms[arm].id, text=f"Draft {key}.", source=f"{arm}-secret"))
            a = Assignment(study_id=study.id, reader_id=reader.id, case_id=case.id, arm_id=arms[arm].id,
                           position=position)
            s.add(a)
            s.flush()
            ids.append(a.id)
    return db, ids


def test_new_study_asks_the_papers_two_likert_items(db):
    with db.begin() as s:
        study = studies.create_study(s, "s0")
        assert [(q["code"], q["kind"], q["min"], q["max"]) for q in study.questions] == [
            ("confidence", "likert", 1, 5), ("mental_demand", "likert", 1, 5)]


@pytest.mark.parametrize("bad, message", [
    ([], "non-empty list"),
    ([{"code": "q", "kind": "slider", "question": "?"}], "kind 'slider'"),
    ([{"code": "1q", "kind": "yes_no", "question": "?"}], "must start with a letter"),
    ([{"code": "q", "kind": "likert", "question": "?", "min": 1, "max": 3, "labels": ["a", "b"]}], "2 labels"),
    ([{"code": "q", "kind": "likert", "question": "?", "min": 3, "max": 3}], "greater than min"),
    ([{"code": "q", "kind": "single_choice", "question": "?", "choices": ["a", "a"]}], "repeat"),
    ([{"code": "q", "kind": "yes_no", "question": "?", "unit": "mm"}], "do not apply"),
    ([{"code": "q", "kind": "yes_no", "question": "?"}, {"code": "q", "kind": "text", "question": "!"}], "twice"),
    ([{"code": "status", "kind": "yes_no", "question": "?"}], "columns of the reads export"),
    ([{"code": "q", "kind": "yes_no", "question": " "}], "question text is missing"),
])
def test_bad_definitions_are_refused_by_name(bad, message):
    with pytest.raises(InvalidInput, match=message):
        questions.normalize_questions(bad)


def test_custom_set_is_answered_stored_exported_and_frozen(setup):
    db, ids = setup
    with db.begin() as s:
        questions.set_questions(s, studies.get_study(s, "s1"), QUESTIONS)
    with db.begin() as s:
        reader = accounts.get_user(s, "reader1")
        screen = reading.open_case(s, reader, ids[0])
        assert [q["code"] for q in screen.questions] == [q["code"] for q in QUESTIONS]
        assert "secret" not in repr(screen) and "llm" not in repr(screen)
    with db.begin() as s:  # a required question left out: all unanswered required ones are named, nothing stored
        reader = accounts.get_user(s, "reader1")
        with pytest.raises(InvalidInput, match="Main finding\\? Recommend follow-up\\?"):
            reading.submit(s, reader, ids[0], "Final.", 1.0, {"quality": 2})
    for answers, message in [
        ({"quality": 4, "finding": "none", "follow_up": True}, "not on the scale 0..3"),
        ({"quality": 2, "finding": "nodule", "follow_up": True}, "not one of the choices"),
        ({"quality": 2, "finding": "none", "follow_up": "maybe"}, "answer yes or no"),
        ({"quality": 2, "finding": "none", "follow_up": True, "size": -1.0}, "outside 0"),
        ({"quality": 2, "finding": "none", "follow_up": True, "note": "x" * 21}, "limit is 20"),
        ({"quality": 2, "finding": "none", "follow_up": True, "signs": ["d"]}, "not a selection"),
        ({"quality": 2, "finding": "none", "follow_up": True, "confidence": 3}, "unknown question"),
    ]:
        with db.begin() as s:
            with pytest.raises(InvalidInput, match=message):
                reading.submit(s, accounts.get_user(s, "reader1"), ids[0], "Final.", 1.0, answers)
    with db.begin() as s:
        reading.submit(s, accounts.get_user(s, "reader1"), ids[0], "Final.", 1.0,
                       {"quality": 2, "finding": "effusion", "signs": ["c", "a"], "follow_up": False, "size": 12,
                        "note": ""})
    with db() as s:
        stored = {a.question: (a.value, a.definition["kind"]) for a in s.query(QuestionAnswer)}
        assert stored == {"quality": (2, "likert"), "finding": ("effusion", "single_choice"),
                          "signs": (["a", "c"], "multiple_choice"), "follow_up": (False, "yes_no"),
                          "size": (12.0, "number")}  # the empty optional note is not stored
        table = export.reads_table(s, studies.get_study(s, "s1"))
        assert list(table.columns) == [*export.READS_COLUMNS, *(q["code"] for q in QUESTIONS)]
        row = table[table.case_key == "C1"].iloc[0]
        assert (row.quality, row.finding, row.signs, row.follow_up, row["size"], row.note) == (
            2, "effusion", "a; c", "no", 12.0, None)
        assert "confidence" not in table.columns
    with db.begin() as s:
        with pytest.raises(InvalidInput, match="1 answered report\\(s\\).*cannot change"):
            questions.set_questions(s, studies.get_study(s, "s1"), questions.default_questions())


def test_choice_questions_are_summarised_by_arm(setup):
    db, ids = setup
    with db.begin() as s:
        questions.set_questions(s, studies.get_study(s, "s1"), QUESTIONS)
    for assignment, finding, signs in ((ids[0], "effusion", ["a", "b"]), (ids[1], "none", ["b"])):
        with db.begin() as s:
            reader = accounts.get_user(s, "reader1")
            reading.open_case(s, reader, assignment)
            reading.submit(s, reader, assignment, "Final.", 1.0,
                           {"quality": 3, "finding": finding, "signs": signs, "follow_up": True})
    frames = load_study(db, "s1")
    assert set(frames.likert["question"]) == {"quality"} and set(frames.likert["scale_max"]) == {3}
    summary = choice_summary(frames.readings, frames.choices).set_index(["question", "arm", "choice"])
    assert summary.loc[("finding", "llm", "effusion"), "n"] == 1
    assert summary.loc[("finding", "model", "none"), "share"] == 1.0
    assert summary.loc[("signs", "llm", "a"), "n"] == 1 and summary.loc[("signs", "model", "b"), "n"] == 1
    assert summary.loc[("follow_up", "model", "yes"), "n"] == 1
    assert ("signs", "model", "a") not in summary.index


def test_set_questions_command_reads_json_and_yaml_and_refuses_bad_files(db, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"  # the database of the db fixture
    with db.begin() as s:
        studies.create_study(s, "s1")
    good = tmp_path / "questions.yaml"
    good.write_text("questions:\n  - code: urgent\n    kind: yes_no\n    question: Urgent finding?\n"
                    "  - code: lesion_mm\n    kind: number\n    question: Lesion size\n    unit: mm\n")
    assert cli.main(["--database", url, "set-questions", "s1", str(good)]) == 0
    assert "2. lesion_mm: Lesion size [number (mm); required]" in capsys.readouterr().out
    bad = tmp_path / "questions.json"
    bad.write_text(json.dumps([{"code": "q", "kind": "likert", "question": "?", "min": 1}]))
    assert cli.main(["--database", url, "set-questions", "s1", str(bad)]) == 1
    assert "questions.json: question 1 (q): max must be an integer" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("[{")
    assert cli.main(["--database", url, "set-questions", "s1", str(tmp_path / "broken.json")]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    with db() as s:
        assert [q["code"] for q in studies.get_study(s, "s1").questions] == ["urgent", "lesion_mm"]
    assert cli.main(["--database", url, "questions", "s1"]) == 0
    assert "1. urgent: Urgent finding? [yes/no; required]" in capsys.readouterr().out
