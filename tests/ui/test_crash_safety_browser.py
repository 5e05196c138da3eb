"""Crash safety, two tabs and sign-in expiry in a real browser against the app as its own process:

- the server is killed with SIGKILL at a random moment while the reader types; after a restart at most the last
  5 s of typing are missing and the active time resumes from what was stored;
- two tabs of one reader on one case: the older tab's save is refused with a visible notice, nothing is overwritten;
- one tab whose periodic, typing and leaving-the-editor saves overlap against a slow database is never refused;
- an idle sign-in session ends: the reader is told, signs in again and finds the text; a coordinator action after
  the idle time is refused until a fresh sign-in.
"""

import random
import time

from sqlalchemy import select

from studyapp.db.models import Report
from studyapp.db.session import open_database
from studyapp.services import accounts, design
from tests.appserver import AppProcess
from tests.browser import sign_in
from tests.studies import chest_study_with_drafts

PASSWORD = "crash-reader-password"
COORDINATOR_PASSWORD = "crash-coordinator-password"
EDITOR_FILLED = "() => document.querySelector('#report-editor textarea')?.value.length > 0"
WORDS = "heart size normal lungs clear no effusion no pneumothorax mediastinum unremarkable osseous structures intact"


def _serve(shared_data, tmp_path, *extra_args, autosave_seconds: float = 5.0, env=None) -> AppProcess:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    sessions = open_database(url)
    with sessions.begin() as s:
        study = chest_study_with_drafts(s, "Crash study", shared_data / "dicom" / "cxr", tmp_path)
        study.autosave_seconds = autosave_seconds
        accounts.enroll_reader(s, study, accounts.add_user(s, "reader1", PASSWORD))
        accounts.add_user(s, "coord", COORDINATOR_PASSWORD, role="coordinator")
        design.generate_assignments(s, study, seed=3, cases_per_reader=3)
    sessions.kw["bind"].dispose()
    server = AppProcess(tmp_path / "data", url, list(extra_args), env=env)
    server.start()
    return server


def _open_first_case(page):
    page.locator("#worklist label").first.click()
    page.wait_for_function(EDITOR_FILLED,
                           timeout=30_000)
    editor = page.locator("#report-editor textarea")
    editor.click()
    editor.press("End")
    return editor


def _stored_report(server) -> Report:
    sessions = open_database(server.database_url)
    with sessions() as s:
        report = s.scalars(select(Report)).one()
    sessions.kw["bind"].dispose()
    return report


def _wait_stored(server, page, suffix: str, timeout_s: float = 15.0) -> None:
    """Wait until the stored text ends with ``suffix`` (a "Saved" status may belong to an earlier periodic save)."""
    deadline = time.monotonic() + timeout_s
    while not _stored_report(server).current_text.endswith(suffix):
        assert time.monotonic() < deadline, f"{suffix!r} was not saved within {timeout_s:.0f} s"
        page.wait_for_timeout(250)


def test_sigkill_while_typing_loses_at_most_the_last_5_seconds(shared_data, tmp_path, browser):
    server = _serve(shared_data, tmp_path)
    try:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server.url, "reader1", PASSWORD)
        editor = _open_first_case(page)
        start_text = editor.input_value()
        typed = [(time.monotonic(), start_text)]  # (when, the text once that word was in the editor)
        kill_after = random.Random().uniform(6.0, 14.0)  # a random moment, never the same twice
        began = time.monotonic()
        words = WORDS.split()
        n = 0
        while time.monotonic() - began < kill_after:
            word = f" {words[n % len(words)]}{n}"
            editor.type(word, delay=40)
            typed.append((time.monotonic(), typed[-1][1] + word))
            n += 1
        killed_at = time.monotonic()
        server.kill()
        page.wait_for_timeout(500)
        context.close()

        server.start()
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server.url, "reader1", PASSWORD)  # sign-in sessions do not survive a restart
        page.wait_for_function(EDITOR_FILLED,
                               timeout=30_000)
        restored = page.locator("#report-editor textarea").input_value()
        final = typed[-1][1]
        assert final.startswith(restored) and restored.startswith(start_text), "not text the reader typed"
        must_have = [text for when, text in typed if when <= killed_at - 5.0]
        assert not must_have or len(restored) >= len(must_have[-1]), (
            f"more than the last 5 s of typing is missing: restored {len(restored)} characters, "
            f"{len(must_have[-1])} were typed 5 s before the kill (of {len(final)})")
        stored = _stored_report(server)
        assert stored.current_text == restored and stored.active_seconds > 1.0
        # the active-time timer resumes from the stored total, not from zero
        page.wait_for_function(
            f"() => parseFloat(document.querySelector('#case-timer').dataset.seconds) >= {stored.active_seconds}",
            timeout=10_000)
        context.close()
    finally:
        server.stop()


def test_two_tabs_of_one_reader_never_overwrite_each_other_silently(shared_data, tmp_path, browser):
    server = _serve(shared_data, tmp_path)
    try:
        context = browser.new_context()  # one sign-in cookie, two tabs
        first = context.new_page()
        sign_in(first, server.url, "reader1", PASSWORD)
        first_editor = _open_first_case(first)
        second = context.new_page()
        second.goto(server.url)  # resumes the case in progress
        second.wait_for_function(EDITOR_FILLED,
                                 timeout=30_000)
        second_editor = second.locator("#report-editor textarea")

        first_editor.type(" Typed in the first tab.")
        _wait_stored(server, first, " Typed in the first tab.")
        second_editor.click()
        second_editor.press("End")
        second_editor.type(" Typed in the second tab.")
        second.wait_for_selector("#save-status >> text=Not saved", timeout=15_000)
        notice = second.locator("#save-status").inner_text()
        assert "another tab or window" in notice and "reload the page" in notice
        assert _stored_report(server).current_text.endswith(" Typed in the first tab.")
        second.wait_for_timeout(6_000)  # later autosaves of the stale tab stay refused and change nothing
        assert _stored_report(server).current_text.endswith(" Typed in the first tab.")
        assert second_editor.input_value().endswith(" Typed in the second tab.")  # still there to copy

        second.reload()
        second.wait_for_function(
            "() => document.querySelector('#report-editor textarea')?.value.endsWith(' Typed in the first tab.')",
            timeout=30_000)
        second_editor.click()
        second_editor.press("End")
        second_editor.type(" Then the second.")
        _wait_stored(server, second, " Typed in the first tab. Then the second.")
        assert "Not saved" not in second.locator("#save-status").inner_text()
        context.close()
    finally:
        server.stop()


def test_one_tab_whose_saves_overlap_against_a_slow_database_is_never_refused(shared_data, tmp_path, browser):
    # every save holds its transaction 0.4 s; the periodic save runs every second, typing saves after each pause,
    # and each word also leaves the editor and comes back: three kinds of save of one page, overlapping
    server = _serve(shared_data, tmp_path, autosave_seconds=1.0, env={"STUDYAPP_TEST_SAVE_DELAY_S": "0.4"})
    try:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server.url, "reader1", PASSWORD)
        editor = _open_first_case(page)
        page.evaluate("""() => { window.saveStatuses = [];
            new MutationObserver(() => window.saveStatuses.push(document.querySelector('#save-status').innerText))
                .observe(document.querySelector('#save-status'), {subtree: true, childList: true, characterData: true});
        }""")
        words = WORDS.split()
        for n in range(30):
            editor.type(f" {words[n % len(words)]}{n}", delay=20)
            page.evaluate("() => window.studySave.now()")  # a typing save at once, beside the timer's
            if n % 3 == 0:
                page.locator("#case-timer").click()  # leaving the editor saves too
                editor.click()
                editor.press("End")
            page.wait_for_timeout(random.uniform(100, 700))
        typed = editor.input_value()
        _wait_stored(server, page, typed[-30:], timeout_s=60.0)
        statuses = page.evaluate("() => window.saveStatuses")
        assert statuses and not [s for s in statuses if "Not saved" in s or "another tab" in s], statuses
        assert _stored_report(server).current_text == typed
        assert "Not saved" not in page.locator("#save-status").inner_text()
        context.close()
    finally:
        server.stop()


def test_idle_sign_in_expires_and_the_text_survives_signing_in_again(shared_data, tmp_path, browser):
    server = _serve(shared_data, tmp_path, "--session-idle-minutes", "0.1")  # 6 s
    try:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server.url, "reader1", PASSWORD)
        editor = _open_first_case(page)
        editor.type(" Typed before going idle.")
        page.wait_for_selector("#save-status >> text=Saved", timeout=15_000)
        # periodic autosaves of unchanged text are not activity: the session ends and the screen says so
        page.wait_for_selector("#save-status >> text=Signed out", timeout=30_000)
        assert "without activity" in page.locator("#save-status").inner_text()
        link = page.locator("#save-status a", has_text="Sign in again")
        assert link.get_attribute("href") == "/logout"
        page.goto(server.url + "/logout")  # what the link does (Gradio's logout clears the cookie)
        page.get_by_label("username").wait_for(timeout=30_000)
        sign_in(page, server.url, "reader1", PASSWORD)
        page.wait_for_function(
            "() => document.querySelector('#report-editor textarea')?.value.endsWith(' Typed before going idle.')",
            timeout=30_000)
        context.close()

        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server.url, "coord", COORDINATOR_PASSWORD)
        page.wait_for_timeout(7_000)
        page.get_by_role("button", name="Refresh").click()
        page.get_by_text("signed out after 0.1 minutes without activity").first.wait_for(timeout=15_000)
        page.reload()  # still signed out: the page says so instead of showing the coordinator's data
        page.wait_for_selector("#signed-in-as >> text=Signed out", timeout=30_000)
        page.goto(server.url + "/logout")
        sign_in(page, server.url, "coord", COORDINATOR_PASSWORD)  # a fresh sign-in works again
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_timeout(1_000)
        assert page.get_by_text("without activity").count() == 0
        context.close()
    finally:
        server.stop()
