"""Sign-in sessions that end after an idle time.

Gradio's ``launch(auth=...)`` signs a user in with a cookie that never expires. Every handler of the app goes
through :func:`studyapp.ui.context.user_action`, which asks :class:`SignInSessions` about the request's sign-in
cookie: a session with no user activity for ``idle_seconds`` is ended for good, and every later action on it is
refused with :class:`SessionExpired` until the user signs in again (a new cookie). What counts as activity is the
handler's call: a periodic autosave that changed nothing is not activity (it would keep an abandoned screen signed
in forever), typing and every other action are. A reader's text is autosaved while they type, so a reader signed
out mid-case finds it after signing in again; coordinator actions after the idle time need a fresh sign-in.

Sessions are kept in memory: a server restart ends them all, as it ends Gradio's own sign-in tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from studyapp.services.errors import PermissionDenied

#: Gradio's sign-in cookies are named ``access-token-<app id>`` and ``access-token-unsecure-<app id>``.
COOKIE_PREFIX = "access-token"
#: Where a signed-out user goes to sign in again (Gradio's logout route clears the cookie, then shows the form).
SIGN_IN_AGAIN_URL = "/logout"


class SessionExpired(PermissionDenied):
    """The sign-in session ended after its idle time; the user must sign in again."""


class SignInSessions:
    """Idle expiry of sign-in sessions, keyed by the sign-in cookie's token. Thread-safe.

    Args:
        idle_seconds: seconds without activity after which a session ends (> 0).
        clock: monotonic seconds (for tests).

    Raises:
        ValueError: ``idle_seconds`` is not positive.
    """

    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.monotonic):
        if not idle_seconds > 0:
            raise ValueError(f"the sign-in idle time must be positive, got {idle_seconds!r} s")
        self.idle_seconds = float(idle_seconds)
        self._clock = clock
        self._last_active: dict[str, float] = {}
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    def check(self, token: str | None, active: bool = True) -> None:
        """Refuse an ended or idle-expired session; a token seen for the first time starts a session.

        Args:
            token: the sign-in cookie's value; ``None`` (a call without the cookie) is not checked.
            active: the call is user activity and restarts the idle time.

        Raises:
            SessionExpired: the session was idle for more than ``idle_seconds`` (it is ended now) or ended before.
        """
        if token is None:
            return
        with self._lock:
            now = self._clock()
            last = self._last_active.setdefault(token, now)
            if token in self._ended or now - last > self.idle_seconds:
                self._ended.add(token)
                self._last_active.pop(token, None)
                minutes = self.idle_seconds / 60
                raise SessionExpired(
                    f"you were signed out after {minutes:g} minute{'s' if minutes != 1 else ''} without activity; "
                    "sign in again to continue (your text saved so far is kept)")
            if active:
                self._last_active[token] = now

    def touch(self, token: str | None) -> None:
        """Record activity on a live session (e.g. an autosave that changed the text)."""
        if token is None:
            return
        with self._lock:
            if token not in self._ended:
                self._last_active[token] = self._clock()


def sign_in_token(request) -> str | None:
    """The sign-in cookie's token of a ``gr.Request`` (``None`` without one)."""
    try:
        cookies = dict(request.cookies)
    except (AttributeError, TypeError):
        return None
    for name in sorted(cookies):
        if name.startswith(COOKIE_PREFIX) and cookies[name]:
            return cookies[name]
    return None
