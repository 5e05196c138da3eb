"""Sign-in sessions kept in the database: a restart of the server signs no one out.

Signing in gives the browser a random token (32 bytes, URL-safe) in an HTTP-only cookie; the database keeps only its
SHA-256 (a stolen database or backup holds no usable token). A session ends for good when the user signs out
(``signed_out``), after ``idle_seconds`` without user activity (``idle``), or when the account's password is set
anew (``password_set``, :func:`end_user_sessions`, e.g. by ``python app.py set-password`` in another process: a
running server notices it at the session's next activity write, within ``write_every_s``); an ended session's cookie is refused on every route until the user signs in again (a new token).

What counts as activity is decided by the caller (:meth:`SignIns.check` with ``active``, :meth:`SignIns.touch`):
a periodic autosave that changed nothing is not activity (it would keep an abandoned screen signed in forever),
typing and every other action are. Activity is kept in memory and written to the row at most every
``write_every_s`` seconds (a tenth of the idle time, at most a minute), so a save costs no extra write; after a
restart a session may thus end up to that much early, never late.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from studyapp.clock import utcnow
from studyapp.db.models import SignInSession, User
from studyapp.services import audit
from studyapp.services.errors import PermissionDenied

END_SIGNED_OUT = "signed_out"
END_IDLE = "idle"
END_PASSWORD_SET = "password_set"


class SessionExpired(PermissionDenied):
    """The sign-in session ended (idle time, sign-out); the user must sign in again."""


@dataclass
class SignIn:
    """What the server knows of one live or ended session (cached per process)."""

    session_id: int
    user_id: int
    username: str
    role: str
    last_active: datetime
    written: datetime
    ended: str | None = None


def token_hash(token: str) -> str:
    """The SHA-256 (hex, 64 characters) of a sign-in token: what the database stores."""
    return hashlib.sha256(token.encode()).hexdigest()


def end_user_sessions(session: Session, user: User, reason: str) -> int:
    """End every live sign-in session of ``user`` for good in the caller's transaction (``reason``, e.g.
    :data:`END_PASSWORD_SET`), each audited as ``session_ended_<reason>``. Returns how many were ended."""
    now = utcnow()
    rows = list(session.scalars(select(SignInSession).where(SignInSession.user_id == user.id,
                                                            SignInSession.ended_at.is_(None))))
    for row in rows:
        row.ended_at, row.end_reason = now, reason
        audit.record(session, f"session_ended_{reason}", user=user, client=row.client)
    return len(rows)


class SignIns:
    """The sign-in sessions of one server process, stored in the database. Thread-safe.

    Args:
        sessions: the process's database session factory.
        idle_seconds: seconds without activity after which a session ends (> 0).
        clock: the current UTC time (for tests).

    Raises:
        ValueError: ``idle_seconds`` is not positive.
    """

    def __init__(self, sessions: sessionmaker[Session], idle_seconds: float, clock: Callable[[], datetime] = utcnow):
        if not idle_seconds > 0:
            raise ValueError(f"the sign-in idle time must be positive, got {idle_seconds!r} s")
        self.sessions = sessions
        self.idle_seconds = float(idle_seconds)
        self.write_every_s = min(60.0, self.idle_seconds / 10)
        self._clock = clock
        self._cache: dict[str, SignIn] = {}
        self._lock = threading.Lock()

    # -- starting and ending -------------------------------------------------------------------------------------
    def start(self, session: Session, user: User, client: str = "") -> str:
        """Open a session for ``user`` (signed in just now from ``client``, an address) in the caller's transaction
        and return its new token (for the cookie; only its hash is stored). Audited as ``signed_in``."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session.add(SignInSession(token_hash=token_hash(token), user_id=user.id, client=client[:64], created_at=now,
                                  last_active_at=now))
        audit.record(session, "signed_in", user=user, client=client)
        session.flush()
        return token

    def end(self, token: str | None, reason: str = END_SIGNED_OUT) -> None:
        """End the session of ``token`` for good (nothing happens for an unknown or ended token)."""
        if not token:
            return
        digest = token_hash(token)
        now = self._clock()
        with self.sessions.begin() as session:
            row = session.scalar(select(SignInSession).where(SignInSession.token_hash == digest))
            if row is None or row.ended_at is not None:
                return
            row.ended_at, row.end_reason = now, reason
            audit.record(session, "signed_out" if reason == END_SIGNED_OUT else f"session_ended_{reason}",
                         user=row.user, client=row.client)
        with self._lock:
            self._cache.pop(digest, None)

    # -- looking up ----------------------------------------------------------------------------------------------
    def lookup(self, token: str | None) -> SignIn | None:
        """The session of ``token`` (``None`` for no or an unknown token); a live session idle for longer than
        ``idle_seconds`` is ended now (reason ``idle``) and returned ended. Not activity."""
        if not token:
            return None
        digest = token_hash(token)
        with self._lock:
            entry = self._cache.get(digest)
        if entry is None:
            entry = self._load(digest)
            if entry is None:
                return None
        if entry.ended is None and (self._clock() - entry.last_active).total_seconds() > self.idle_seconds:
            self.end(token, END_IDLE)
            entry.ended = END_IDLE
        return entry

    def check(self, token: str | None, active: bool = True) -> None:
        """Refuse an ended or idle-expired session.

        Args:
            token: the sign-in cookie's value; ``None`` (a call without the cookie) is not checked here (the
                route refuses it).
            active: the call is user activity and restarts the idle time.

        Raises:
            SessionExpired: the session ended (after its idle time, or signed out), or the token is unknown.
        """
        if token is None:
            return
        entry = self.lookup(token)
        if entry is None or entry.ended == END_SIGNED_OUT:
            raise SessionExpired("you are signed out; sign in again to continue")
        if entry.ended == END_PASSWORD_SET:
            raise SessionExpired("you were signed out because your password was changed; sign in with the new one")
        if entry.ended is not None:
            minutes = self.idle_seconds / 60
            raise SessionExpired(
                f"you were signed out after {minutes:g} minute{'s' if minutes != 1 else ''} without activity; "
                "sign in again to continue (your text saved so far is kept)")
        if active:
            self._active(entry)

    def touch(self, token: str | None) -> None:
        """Record activity on a live session (e.g. an autosave that changed the text)."""
        entry = self.lookup(token)
        if entry is not None and entry.ended is None:
            self._active(entry)

    def _active(self, entry: SignIn) -> None:
        now = self._clock()
        entry.last_active = now
        if (now - entry.written).total_seconds() >= self.write_every_s:
            entry.written = now
            with self.sessions.begin() as session:
                written = session.execute(update(SignInSession).where(SignInSession.id == entry.session_id,
                                                                      SignInSession.ended_at.is_(None))
                                          .values(last_active_at=now)).rowcount
                if not written:  # ended by another process (end_user_sessions)
                    entry.ended = session.scalar(select(SignInSession.end_reason)
                                                 .where(SignInSession.id == entry.session_id)) or END_SIGNED_OUT

    def _load(self, digest: str) -> SignIn | None:
        with self.sessions() as session:
            row = session.execute(
                select(SignInSession, User.username, User.role).join(User, User.id == SignInSession.user_id)
                .where(SignInSession.token_hash == digest)).one_or_none()
        if row is None:
            return None
        stored, username, role = row
        entry = SignIn(stored.id, stored.user_id, username, role, stored.last_active_at, stored.last_active_at,
                       stored.end_reason if stored.ended_at is not None else None)
        with self._lock:
            return self._cache.setdefault(digest, entry)
