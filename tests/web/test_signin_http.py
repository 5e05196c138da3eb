"""Sign-in over raw HTTP against the served app: throttling and lockout per account and per address, the same
answer time for unknown accounts, audited failures, and sessions that end for good (Gradio's routes included)."""

import statistics
import time

import httpx
from sqlalchemy import select

from studyapp.db.models import AuditEvent, SignInSession
from studyapp.services import accounts
from studyapp.services.signins import token_hash
from studyapp.ui.signin import COOKIE_NAME

READER_PASSWORD = "orbit-lantern-42"
COORDINATOR_PASSWORD = "granite-harbour-77"


def _accounts(session, readers: int = 1):
    for index in range(1, readers + 1):
        accounts.add_user(session, f"reader{index}", READER_PASSWORD)
    accounts.add_user(session, "coord", COORDINATOR_PASSWORD, role="coordinator")


def _sign_in(client: httpx.Client, url: str, username: str, password: str) -> httpx.Response:
    return client.post(f"{url}/login", data={"username": username, "password": password})


def test_failed_sign_ins_wait_longer_then_lock_the_account(serve_app):
    app = serve_app(_accounts, signin_lockout_failures=5, signin_lockout_minutes=0.05)  # locked for 3 s
    with httpx.Client() as client:
        for _ in range(3):  # free failures: answered at once, wrong
            assert _sign_in(client, app.url, "reader1", "wrong-password").status_code == 401
        fourth = _sign_in(client, app.url, "reader1", "wrong-password")
        assert fourth.status_code == 401 and fourth.json() == {"detail": "Wrong username or password."}
        waited = _sign_in(client, app.url, "reader1", READER_PASSWORD)  # even the right password waits now
        assert waited.status_code == 429 and waited.headers["Retry-After"] in ("1", "2")
        assert "try again in" in waited.json()["detail"]
        time.sleep(1.1)
        assert _sign_in(client, app.url, "reader1", "wrong-password").status_code == 401  # 5th: locked
        locked = _sign_in(client, app.url, "reader1", READER_PASSWORD)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 2
        # another account from the same address is not locked
        assert _sign_in(client, app.url, "coord", COORDINATOR_PASSWORD).status_code == 200
        time.sleep(3.1)
        assert _sign_in(client, app.url, "reader1", READER_PASSWORD).json() == {"success": True, "redirect": "/"}
    with app.sessions() as session:
        failed = session.scalars(select(AuditEvent).where(AuditEvent.kind == "sign_in_failed")).all()
        assert len(failed) == 5  # the refused-while-waiting tries were never checked
        assert {e.detail["username"] for e in failed} == {"reader1"} and failed[-1].detail["locked"] is True
        assert all(e.user_id is not None and e.detail["client"] == "127.0.0.1" for e in failed)
        assert session.scalars(select(AuditEvent).where(AuditEvent.kind == "signed_in")).all()


def test_one_address_guessing_many_accounts_is_slowed_down(serve_app):
    app = serve_app(_accounts)
    with httpx.Client() as client:
        # an address may fail 5 x 3 times for free, then waits 1 s from the 20th failure on
        answers = [_sign_in(client, app.url, f"nobody{n}", "wrong-password").status_code for n in range(20)]
        assert answers == [401] * 20
        refused = _sign_in(client, app.url, "reader1", READER_PASSWORD)  # an unknown name made the address wait
        assert refused.status_code == 429
        time.sleep(float(refused.headers["Retry-After"]) + 0.1)
        assert _sign_in(client, app.url, "reader1", READER_PASSWORD).status_code == 200


def test_unknown_accounts_take_as_long_as_wrong_passwords(serve_app):
    app = serve_app(lambda s: _accounts(s, readers=4))
    timings = {"known": [], "unknown": []}
    with httpx.Client() as client:
        for index in range(1, 5):  # one try per account: no throttling delay in the way
            for kind, name in (("known", f"reader{index}"), ("unknown", f"ghost{index}")):
                began = time.perf_counter()
                assert _sign_in(client, app.url, name, "wrong-password").status_code == 401
                timings[kind].append(time.perf_counter() - began)
    known, unknown = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    assert 0.5 < unknown / known < 2.0, f"unknown {unknown:.3f} s vs known {known:.3f} s"


def test_correct_sign_ins_are_never_slowed(serve_app):
    app = serve_app(_accounts)
    with httpx.Client() as client:
        for _ in range(12):
            assert _sign_in(client, app.url, "reader1", READER_PASSWORD).status_code == 200


def test_sign_out_and_idle_expiry_end_gradio_routes_too(serve_app):
    app = serve_app(_accounts, session_idle_minutes=0.05)  # 3 s
    with httpx.Client() as client:
        assert client.get(f"{app.url}/config").status_code == 401
        for route in ("cancel", "reset"):  # Gradio leaves these open; the gate does not
            assert client.post(f"{app.url}/gradio_api/{route}", json={"event_id": "x"}).status_code == 401
        assert _sign_in(client, app.url, "reader1", READER_PASSWORD).status_code == 200
        token = client.cookies[COOKIE_NAME]
        assert client.get(f"{app.url}/config").status_code == 200
        time.sleep(3.5)  # idle
        assert client.get(f"{app.url}/config").status_code == 401

    with httpx.Client() as client:
        _sign_in(client, app.url, "reader1", READER_PASSWORD)
        second = client.cookies[COOKIE_NAME]
        assert second != token and client.get(f"{app.url}/config").status_code == 200
        assert client.get(f"{app.url}/logout").status_code == 303
    with httpx.Client(cookies={COOKIE_NAME: second}) as replay:  # the old cookie, kept by an attacker
        assert replay.get(f"{app.url}/config").status_code == 401
        assert replay.post(f"{app.url}/gradio_api/queue/join", json={}).status_code == 401
        assert replay.get(f"{app.url}/", follow_redirects=False).headers["location"].startswith("/login")
    with app.sessions() as session:
        rows = {r.token_hash: r for r in session.scalars(select(SignInSession))}
        assert rows[token_hash(token)].end_reason == "idle" and rows[token_hash(second)].end_reason == "signed_out"
        assert token not in {r.token_hash for r in rows.values()}  # only hashes are stored


def test_a_reader_never_receives_the_coordinator_app(serve_app):
    app = serve_app(_accounts)
    with httpx.Client() as reader, httpx.Client() as coordinator:
        _sign_in(reader, app.url, "reader1", READER_PASSWORD)
        assert _sign_in(coordinator, app.url, "coord", COORDINATOR_PASSWORD).json()["redirect"] == "/coordinator/"
        mine = reader.get(f"{app.url}/config")
        assert mine.status_code == 200 and "report-editor" in mine.text
        for label in ("Comparison results", "Create study", "coord-study", "Normal template"):
            assert label not in mine.text, label
        assert reader.get(f"{app.url}/coordinator/config").status_code == 403
        assert reader.get(f"{app.url}/coordinator/", follow_redirects=False).headers["location"] == "/"
        theirs = coordinator.get(f"{app.url}/coordinator/config")
        assert theirs.status_code == 200 and "Comparison results" in theirs.text
        assert coordinator.get(f"{app.url}/config").status_code == 403
        page = coordinator.get(f"{app.url}/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/coordinator/"
        csp = mine.headers["content-security-policy"]
        assert "img-src 'self' data: blob:" in csp and "connect-src 'self'" in csp and "default-src 'self'" in csp
