"""Sign-in sessions end after their idle time; only activity restarts it; an ended session stays ended."""

import pytest

from studyapp.ui.signin import SessionExpired, SignInSessions, sign_in_token


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_idle_time_ends_a_session_and_only_activity_restarts_it():
    clock = Clock()
    sessions = SignInSessions(60, clock)
    sessions.check("a")
    clock.now += 50
    sessions.check("a", active=False)  # a periodic autosave of unchanged text: not activity
    clock.now += 20
    with pytest.raises(SessionExpired, match="signed out after 1 minute without activity"):
        sessions.check("a", active=False)  # 70 s after the last activity
    clock.now += 1
    with pytest.raises(SessionExpired):
        sessions.check("a")  # ended for good: a new sign-in (new token) is needed
    sessions.touch("a")
    with pytest.raises(SessionExpired):
        sessions.check("a")

    sessions.check("b")
    for _ in range(5):
        clock.now += 50
        sessions.touch("b")  # typing saves
        sessions.check("b", active=False)
    sessions.check(None)  # no cookie: nothing to check


def test_bad_idle_time_and_cookie_lookup():
    with pytest.raises(ValueError, match="must be positive"):
        SignInSessions(0)

    class Request:
        cookies = {"other": "x", "access-token-unsecure-abc": "tok", "access-token-abc": "tok"}

    assert sign_in_token(Request()) == "tok"
    assert sign_in_token(object()) is None
