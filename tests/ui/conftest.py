"""Browser-test fixtures: the real app served on loopback over a temp SQLite database, and Debian chromium
driven by Playwright (never `playwright install`)."""

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from studyapp.db.session import open_database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@dataclass
class LiveApp:
    """A served app: ``url`` on 127.0.0.1 and the ``sessions`` of its database."""

    url: str
    sessions: sessionmaker[Session]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def serve_app(tmp_path) -> Iterator[Callable[[Callable[[Session], None]], LiveApp]]:
    """Call with a function that fills the database; returns the app served on loopback."""
    from studyapp.ui.app import build_app, launch_kwargs
    from studyapp.ui.context import UIContext

    served = []

    def start(fill: Callable[[Session], None]) -> LiveApp:
        sessions = open_database(f"sqlite:///{tmp_path / 'ui.db'}")
        with sessions.begin() as session:
            fill(session)
        ctx = UIContext(sessions)
        blocks = build_app(ctx)
        port = _free_port()
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


def sign_in(page, url: str, username: str, password: str) -> None:
    """Fill Gradio's sign-in form and wait for the app to load."""
    page.goto(url)
    page.get_by_label("username").fill(username)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#signed-in-as >> text=Signed in as", timeout=30_000)
