"""Shared fixtures: the real data in ../shared/data, a fresh migrated database, the app served on loopback and
a headless Debian chromium."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.browser import CHROMIUM, CHROMIUM_ARGS, LiveApp, free_port

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder (never edit files in it)."""
    assert SHARED_DATA.is_dir(), f"real data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture()
def db(tmp_path):
    """A session factory on a new SQLite file migrated to head."""
    from studyapp.db.session import open_database

    return open_database(f"sqlite:///{tmp_path / 'study.db'}")


@pytest.fixture()
def serve_app(tmp_path) -> Iterator[Callable[[Callable[[Session], None]], LiveApp]]:
    """Call with a function that fills the database; returns the whole app served on 127.0.0.1."""
    from studyapp.db.session import open_database
    from studyapp.ui.app import build_app, launch_kwargs
    from studyapp.ui.context import UIContext

    served = []

    def start(fill: Callable[[Session], None]) -> LiveApp:
        sessions = open_database(f"sqlite:///{tmp_path / 'ui.db'}")
        with sessions.begin() as session:
            fill(session)
        ctx = UIContext(sessions)
        blocks = build_app(ctx)
        port = free_port()
        blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                      **launch_kwargs(ctx))
        served.append(blocks)
        return LiveApp(f"http://127.0.0.1:{port}", sessions)

    yield start
    for blocks in served:
        blocks.close()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
