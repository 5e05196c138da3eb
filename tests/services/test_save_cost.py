"""What an autosave and the coordinator's progress views cost the database (issue 16, 100 readers at once): the
statements they send, counted on the real engine with SQLAlchemy's ``before_cursor_execute`` event."""

from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr
import pytest
from sqlalchemy import event

from studyapp.db.models import Report, ReportVersion
from studyapp.services import accounts, design, export, reading, studies
from studyapp.ui.context import UIContext
from studyapp.ui.reading_tab import ReadingTab
from tests.studies import chest_study_with_drafts

PAGE = "0123456789abcdef"


@contextmanager
def statements(sessions) -> Iterator[list[str]]:
    """The SQL statements sent through ``sessions``' engine inside the block, one string each."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_):
        sent.append(" ".join(statement.split()))

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture()
def opened(db, shared_data, tmp_path):
    """A chest study with two readers and a balanced design; reader0's first case opened. Returns the session
    factory, the reading tab and that assignment's id and version."""
    with db.begin() as s:
        study = chest_study_with_drafts(s, "cost study", shared_data / "dicom" / "cxr", tmp_path)
        for index in range(2):
            accounts.enroll_reader(s, study, accounts.add_user(s, f"reader{index}", f"orbit-lantern-{index}x"))
        design.generate_assignments(s, study, seed=1, cases_per_reader=3)
        reader = accounts.get_user(s, "reader0")
        assignment_id = reading.worklist(s, reader, study)[0].assignment_id
        version = reading.open_case(s, reader, assignment_id).version
    with gr.Blocks():
        tab = ReadingTab(UIContext(db))
    return db, tab, assignment_id, version


def test_an_autosave_costs_four_statements_and_an_unchanged_one_three(opened):
    db, tab, assignment_id, version = opened
    request = gr.Request(username="reader0")
    for n in (1, 2):
        with statements(db) as sent:
            status, version, ack = tab._autosave(assignment_id, version, f"typed {n}", f"{PAGE}:{n}", float(n),
                                                  request)
        assert ack["saved"] and status.startswith("Saved") and version == 1 + n
        # the account, the assignment with its report, case and series (one query), the report, the new version
        assert [s.split()[0] for s in sent] == ["SELECT", "SELECT", "UPDATE", "INSERT"], sent
        assert "FROM report_versions" not in " ".join(sent)  # the history is never loaded
    with statements(db) as sent:
        status, same, ack = tab._autosave(assignment_id, version, "typed 2", f"{PAGE}:3", 3.0, request)
    assert ack["saved"] and same == version and [s.split()[0] for s in sent] == ["SELECT", "SELECT", "UPDATE"], sent
    with db() as s:
        report = s.query(Report).filter_by(assignment_id=assignment_id).one()
        assert report.current_text == "typed 2" and report.active_seconds >= 0
        assert s.query(ReportVersion).filter_by(report_id=report.id).count() == 2


def test_a_refused_save_of_another_tab_names_the_case(opened):
    """The case's label comes from what the save loaded with the assignment (no query after a failed flush)."""
    db, tab, assignment_id, version = opened
    request = gr.Request(username="reader0")
    tab._autosave(assignment_id, version, "first tab", f"{PAGE}:1", 1.0, request)
    status, stale, ack = tab._autosave(assignment_id, version, "second tab", f"{'f' * 16}:1", 1.0, request)
    assert not ack["saved"] and stale == -1 and "Case 01" in status and "another tab or window" in status


def test_progress_views_load_no_report_text(opened):
    db, tab, assignment_id, version = opened
    request = gr.Request(username="reader0")
    for n in range(1, 4):
        _, version, _ = tab._autosave(assignment_id, version, f"typed {n}", f"{PAGE}:{n}", float(n), request)
    with db() as s, statements(db) as sent:
        study = studies.get_study(s, "cost study")
        per_reader = export.progress_table(s, study).set_index("reader")
        per_case = export.case_progress_table(s, study)
    text = " ".join(sent)
    assert "current_text" not in text and "report_versions" not in text and "draft_text" not in text
    assert per_reader.loc["reader0", "in_progress"] == 1 and per_reader.loc["reader1", "in_progress"] == 0
    assert per_reader["assigned"].sum() == per_case["assigned"].sum() == 6  # 2 readers x 3 cases
    with db() as s:
        reads = export.reads_table(s, studies.get_study(s, "cost study"))
    assert reads.loc[reads["status"] == "in_progress", "n_autosaves"].tolist() == [3]
