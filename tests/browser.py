"""Browser-test helpers: the real app served on loopback over a temp SQLite database, and Debian chromium
driven by Playwright (never `playwright install`). Fixtures using these live in tests/conftest.py."""

import socket
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_in(page, url: str, username: str, password: str) -> None:
    """Fill Gradio's sign-in form and wait for the app to load."""
    page.goto(url)
    page.get_by_label("username").fill(username)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#signed-in-as >> text=Signed in as", timeout=30_000)
