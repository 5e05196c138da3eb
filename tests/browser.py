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


class ResponseRecorder:
    """ASGI wrapper that keeps every response body byte the server sends, in order, for blinding checks."""

    def __init__(self, app):
        self.app = app
        self.chunks: list[bytes] = []

    async def __call__(self, scope, receive, send):
        async def recording_send(message):
            if message["type"] == "http.response.body":
                self.chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, recording_send if scope["type"] == "http" else send)

    def mark(self) -> int:
        """A position to read from later with :meth:`text_since`."""
        return len(self.chunks)

    def text_since(self, mark: int = 0) -> str:
        """Everything sent since ``mark``, decoded as UTF-8 (JSON escapes of newlines undone)."""
        return b"".join(self.chunks[mark:]).decode("utf-8", "replace").replace("\\n", "\n")


@dataclass
class LiveApp:
    """A served app: ``url`` on 127.0.0.1, the ``sessions`` of its database, and what it ``sent``."""

    url: str
    sessions: sessionmaker[Session]
    sent: ResponseRecorder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_in(page, url: str, username: str, password: str) -> None:
    """Fill the sign-in form (``/login``, where ``url`` leads a signed-out browser) and wait for the user's app
    (readers ``/``, coordinators ``/coordinator/``) to load."""
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#signed-in-as >> text=Signed in as", timeout=30_000)


def worklist_label(session: Session, case_key: str) -> tuple[str, str]:
    """``(username, label)``: the first reader assigned the case ``case_key`` and the neutral label their worklist
    shows for it (readers never see the key; ``studyapp.services.reading.case_label``)."""
    from studyapp.db.models import Assignment, Case
    from studyapp.services.reading import case_label

    assignment = session.query(Assignment).join(Case).filter(Case.case_key == case_key).order_by(Assignment.id).first()
    return assignment.reader.username, case_label(assignment.position, assignment.case)
