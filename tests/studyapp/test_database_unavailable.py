"""A user action against a database that cannot be reached is refused with a true message (never a bare "Error"),
and the reading screen tells the reader their text is not saved yet but kept in the browser."""

from types import SimpleNamespace

import gradio as gr
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from studyapp.config import Settings
from studyapp.ui.context import DATABASE_UNAVAILABLE, UIContext, database_unavailable, user_action
from studyapp.ui.reading_tab import NOT_SAVED_YET, ReadingTab
from tests.browser import free_port


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
    status, version, ack = tab._autosave(1, 1, "Heart size normal.", "ab" * 16 + ":7", 3.0,
                                         SimpleNamespace(username="reader1", cookies={}))
    assert status == f"**{NOT_SAVED_YET}**" and ack == {"sequence": 7, "saved": False}
    assert version == gr.update()  # the tab's version stays: the next save sends the whole text again
