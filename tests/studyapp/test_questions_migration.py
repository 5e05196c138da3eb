"""Revision 0006 on a database holding answers: each study gets its Likert scales as questions (confidence, then
mental demand), every stored Likert answer becomes an answer to them with its scale, and downgrade brings them
back."""

import json

from alembic import command
from sqlalchemy import inspect, text

from studyapp.db.models import QuestionAnswer
from studyapp.db.session import alembic_config, make_engine, open_database
from studyapp.services import export, questions, studies

SCALES = {
    "mental_demand": {"min": 1, "max": 5, "question": "How mentally demanding was this case?",
                      "labels": ["Very low", "Low", "Moderate", "High", "Very high"]},
    "confidence": {"min": 1, "max": 7, "question": "How confident are you?"},
}


def _fill_0005(engine) -> None:
    """A study with a 1-7 confidence scale and one submitted report with both answers, written as revision 0005."""
    with engine.begin() as c:
        c.execute(text("INSERT INTO reader_studies (id, name, description, seed, template_text, likert_scales, "
                       "autosave_seconds, idle_seconds, created_at) VALUES (1, 'old', '', 0, '', :scales, 5, 60, "
                       "'2026-01-01 00:00:00')"), {"scales": json.dumps(SCALES)})
        c.execute(text("INSERT INTO users (id, username, display_name, password_hash, role, created_at) "
                       "VALUES (1, 'reader1', '', '-', 'reader', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO study_readers (id, study_id, user_id) VALUES (1, 1, 1)"))
        c.execute(text("INSERT INTO arms (id, study_id, code, label, shows_findings) VALUES (1, 1, 'llm', '', 0)"))
        c.execute(text("INSERT INTO cases (id, study_id, case_key, study_instance_uid, is_practice) "
                       "VALUES (1, 1, 'C1', '1.2.3', 0)"))
        c.execute(text("INSERT INTO assignments (id, study_id, reader_id, case_id, arm_id, position) "
                       "VALUES (1, 1, 1, 1, 1, 1)"))
        c.execute(text("INSERT INTO reports (id, assignment_id, draft_text, current_text, final_text, status, "
                       "opened_at, submitted_at, active_seconds, version) VALUES (1, 1, 'd', 'f', 'f', 'submitted', "
                       "'2026-01-01 00:00:00', '2026-01-01 00:01:00', 30, 2)"))
        for i, (question, value) in enumerate((("confidence", 6), ("mental_demand", 2)), start=1):
            c.execute(text("INSERT INTO likert_responses (id, report_id, question, value, scale) "
                           "VALUES (:i, 1, :q, :v, :s)"), {"i": i, "q": question, "v": value,
                                                           "s": json.dumps(SCALES[question])})


def test_0006_keeps_existing_answers_as_answers_to_the_default_questions(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    command.upgrade(alembic_config(url), "0005")
    _fill_0005(make_engine(url))
    command.upgrade(alembic_config(url), "head")
    names = set(inspect(make_engine(url)).get_table_names())
    assert "question_answers" in names and "likert_responses" not in names

    sessions = open_database(url)
    with sessions() as s:
        study = studies.get_study(s, "old")
        assert [(q["code"], q["kind"], q["min"], q["max"], q["required"]) for q in study.questions] == [
            ("confidence", "likert", 1, 7, True), ("mental_demand", "likert", 1, 5, True)]
        assert study.questions[1]["labels"][0] == "Very low" and "labels" not in study.questions[0]
        row = export.reads_table(s, study).iloc[0]
        assert (row.confidence, row.mental_demand) == (6, 2)
        answers = {a.question: (a.value, a.definition["max"]) for a in s.query(QuestionAnswer)}
        assert answers == {"confidence": (6, 7), "mental_demand": (2, 5)}
        # the migrated study still validates answers against its (migrated) scales
        assert questions.validate_answers(study.questions, {"confidence": 7, "mental_demand": 1}) == {
            "confidence": 7, "mental_demand": 1}

    command.downgrade(alembic_config(url), "0005")
    with make_engine(url).connect() as c:
        assert json.loads(c.execute(text("SELECT likert_scales FROM reader_studies")).scalar_one())["confidence"][
            "max"] == 7
        assert sorted(c.execute(text("SELECT question, value FROM likert_responses")).all()) == [
            ("confidence", 6), ("mental_demand", 2)]
