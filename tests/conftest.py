"""Shared fixtures: the real data in ../shared/data, a fresh migrated database, the app served on loopback and
a headless Debian chromium."""

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.browser import CHROMIUM, CHROMIUM_ARGS, LiveApp, ResponseRecorder, free_port
from tests.pgserver import throwaway_postgresql

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
    """Call with a function that fills the database (and optional ``Settings`` fields, e.g.
    ``session_idle_minutes=0.1``); returns the whole app served on 127.0.0.1 by uvicorn, with every response body
    recorded (``LiveApp.sent``)."""
    import uvicorn

    from studyapp.config import Settings
    from studyapp.db.session import open_database
    from studyapp.ui.context import UIContext
    from studyapp.web.app import build_web_app

    servers = []

    def start(fill: Callable[[Session], None], **settings) -> LiveApp:
        sessions = open_database(f"sqlite:///{tmp_path / 'ui.db'}")
        with sessions.begin() as session:
            fill(session)
        ctx = UIContext(sessions, Settings(data_dir=tmp_path / "data", **settings))  # PACS imports: there, not ~
        recorder = ResponseRecorder(build_web_app(ctx))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the app did not start within 30 s"
            time.sleep(0.05)
        servers.append((server, thread))
        return LiveApp(f"http://127.0.0.1:{port}", sessions, recorder)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def postgresql_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian ``postgresql``) on 127.0.0.1, run as the ``postgres`` user: the URL of
    its ``postgres`` database, for creating the per-test databases of :func:`postgresql_url`."""
    with throwaway_postgresql() as url:
        yield url


@pytest.fixture()
def postgresql_url(postgresql_cluster) -> Iterator[str]:
    """A new, empty database of the session's PostgreSQL server for one test (tests see no other test's rows),
    dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"test_{uuid.uuid4().hex}"
    admin = create_engine(postgresql_cluster, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgresql_cluster.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(autouse=True)
def fresh_accelerator_state() -> Iterator[None]:
    """Each test's ``engine.training.train`` gets its own accelerate state: accelerate keeps one per process (a
    training run is one process in use), and a later run with another mixed precision would be refused."""
    yield
    if "accelerate.state" in sys.modules:
        sys.modules["accelerate.state"].AcceleratorState._reset_state()
