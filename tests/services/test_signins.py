"""Sign-in sessions in the database: idle time ends them for good, only activity restarts it, sign-out ends them,
a new server process (a restart) knows them, and only the token's hash is stored."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from studyapp.db.models import SignInSession
from studyapp.services import accounts
from studyapp.services.signins import SessionExpired, SignIns, token_hash
from studyapp.ui.signin import sign_in_token


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float):
        self.now += timedelta(seconds=seconds)


def _start(db, sign_ins: SignIns, username: str = "reader1") -> str:
    with db.begin() as s:
        user = accounts.find_user(s, username) or accounts.add_user(s, username, "orbit-lantern-42")
        return sign_ins.start(s, user, "10.0.0.7")


def test_idle_time_ends_a_session_and_only_activity_restarts_it(db):
    clock = Clock()
    sign_ins = SignIns(db, 60, clock)
    a = _start(db, sign_ins)
    sign_ins.check(a)
    clock.advance(50)
    sign_ins.check(a, active=False)  # a periodic autosave of unchanged text: not activity
    clock.advance(20)
    with pytest.raises(SessionExpired, match="signed out after 1 minute without activity"):
        sign_ins.check(a, active=False)  # 70 s after the last activity
    clock.advance(1)
    with pytest.raises(SessionExpired):
        sign_ins.check(a)  # ended for good: a new sign-in (new token) is needed
    sign_ins.touch(a)
    with pytest.raises(SessionExpired):
        sign_ins.check(a)

    b = _start(db, sign_ins)
    for _ in range(5):
        clock.advance(50)
        sign_ins.touch(b)  # typing saves
        sign_ins.check(b, active=False)
    sign_ins.check(None)  # no cookie: the route refuses it, nothing to check here
    with pytest.raises(SessionExpired, match="you are signed out"):
        sign_ins.check("never-issued")


def test_sessions_survive_a_new_process_and_sign_out_ends_them(db):
    clock = Clock()
    token = _start(db, SignIns(db, 600, clock))
    restarted = SignIns(db, 600, clock)  # what a restarted server sees: only the database
    entry = restarted.lookup(token)
    assert (entry.username, entry.role, entry.ended) == ("reader1", "reader", None)
    restarted.check(token)
    restarted.end(token)
    with pytest.raises(SessionExpired, match="you are signed out"):
        SignIns(db, 600, clock).check(token)
    with db() as s:
        row = s.scalars(select(SignInSession)).one()
        assert row.token_hash == token_hash(token) != token and len(row.token_hash) == 64
        assert (row.end_reason, row.client) == ("signed_out", "10.0.0.7")


def test_activity_is_written_at_most_every_tenth_of_the_idle_time(db):
    clock = Clock()
    sign_ins = SignIns(db, 600, clock)  # writes at most every 60 s
    token = _start(db, sign_ins)
    clock.advance(30)
    sign_ins.check(token)
    with db() as s:
        assert s.scalars(select(SignInSession.last_active_at)).one() == clock.now - timedelta(seconds=30)
    clock.advance(31)
    sign_ins.check(token)
    with db() as s:
        assert s.scalars(select(SignInSession.last_active_at)).one() == clock.now


def test_bad_idle_time_and_cookie_lookup(db):
    with pytest.raises(ValueError, match="must be positive"):
        SignIns(db, 0)

    class Request:
        cookies = {"other": "x", "studyapp-session": "tok"}

    assert sign_in_token(Request()) == "tok"
    assert sign_in_token(object()) is None
