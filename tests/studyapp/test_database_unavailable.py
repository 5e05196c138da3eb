"""A user action against a database that cannot be reached or written (stopped server, full disk) is refused with a
true message (never a bare "Error"), and the reading screen tells the reader their text is not saved yet but kept
in the browser; once the database is back the next save stores the whole text."""

from types import SimpleNamespace

import gradio as gr
import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

from studyapp.config import Settings
from studyapp.db.models import Report
from studyapp.db.session import make_engine, open_database
from studyapp.services import accounts, design, reading
from studyapp.ui.context import DATABASE_UNAVAILABLE, UIContext, database_unavailable, user_action
from studyapp.ui.reading_tab import NOT_SAVED_YET, ReadingTab
from tests.browser import free_port
from tests.studies import chest_study_with_drafts

READER = SimpleNamespace(username="reader1", cookies={})


def _unreachable_context(tmp_path) -> UIContext:
    # nothing listens on this port: every connection attempt fails as with a stopped PostgreSQL server
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres",
                           connect_args={"connect_timeout": 5})
    return UIContext(sessionmaker(engine), Settings(data_dir=tmp_path / "data"))


def test_user_action_against_a_stopped_database_says_so(tmp_path):
    ctx = _unreachable_context(tmp_path)
    with pytest.raises(gr.Error) as caught:
        with user_action(ctx, SimpleNamespace(username="reader1", cookies={})):
            pass
    assert caught.value.message == DATABASE_UNAVAILABLE
    assert database_unavailable(caught.value)


def test_a_refused_service_call_is_not_an_unreachable_database(db, tmp_path):
    ctx = UIContext(db, Settings(data_dir=tmp_path / "data"))
    with pytest.raises(gr.Error) as caught:
        with user_action(ctx, SimpleNamespace(username="nobody", cookies={})):
            pass
    assert "nobody" in caught.value.message and not database_unavailable(caught.value)


def test_an_autosave_against_a_stopped_database_is_not_saved_yet(tmp_path):
    with gr.Blocks():
        tab = ReadingTab(_unreachable_context(tmp_path))
    status, version, ack = tab._autosave(1, 1, "Heart size normal.", "ab" * 16 + ":7", 3.0, READER)
    assert status == f"**{NOT_SAVED_YET}**" and ack == {"sequence": 7, "saved": False}
    assert version == gr.update()  # the tab's version stays: the next save sends the whole text again


def test_an_autosave_on_a_full_disk_is_not_saved_yet_then_saved_in_full(shared_data, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    sessions = open_database(url)
    with sessions.begin() as s:
        study = chest_study_with_drafts(s, "Full disk", shared_data / "dicom" / "cxr", tmp_path)
        reader = accounts.add_user(s, "reader1", "full-disk-reader-password")
        accounts.enroll_reader(s, study, reader)
        design.generate_assignments(s, study, seed=3, cases_per_reader=3)
        screen = reading.open_case(s, reader, reading.worklist(s, reader, study)[0].assignment_id)
    sessions.kw["bind"].dispose()
    full = make_engine(url)

    @event.listens_for(full, "connect")
    def _no_growth(dbapi_connection, _record):  # the file may not grow: SQLite answers "database or disk is full"
        dbapi_connection.execute("PRAGMA max_page_count = 1")  # (raised to the pages the file has now)

    text = screen.text + " Heart size normal." * 2000  # needs new pages
    with gr.Blocks():
        tab = ReadingTab(UIContext(sessionmaker(full, expire_on_commit=False), Settings(data_dir=tmp_path / "d")))
    status, version, ack = tab._autosave(screen.assignment_id, screen.version, text, "cd" * 16 + ":1", 2.0, READER)
    assert status == f"**{NOT_SAVED_YET}**" and ack == {"sequence": 1, "saved": False} and version == gr.update()
    full.dispose()

    with gr.Blocks():  # room again: the next save (the page sends the whole text each time) stores all of it
        tab = ReadingTab(UIContext(open_database(url), Settings(data_dir=tmp_path / "d")))
    status, version, ack = tab._autosave(screen.assignment_id, screen.version, text, "cd" * 16 + ":2", 3.0, READER)
    assert status.startswith("Saved ") and ack == {"sequence": 2, "saved": True} and version == screen.version + 1
    with tab.ctx.sessions() as s:
        assert s.get(Report, 1).current_text == text  # the one opened case's report


def test_the_first_transaction_after_a_postgresql_restart_succeeds():
    from sqlalchemy import text

    from tests.pgserver import postgresql_server

    with postgresql_server() as server:
        engine = make_engine(server.url)
        with engine.connect() as connection:  # a pooled connection, kept open across the restart
            assert connection.execute(text("select 1")).scalar() == 1
        server.stop()
        server.start()
        with engine.connect() as connection:  # the dropped connection is replaced, not handed out
            assert connection.execute(text("select 2")).scalar() == 2
        engine.dispose()
