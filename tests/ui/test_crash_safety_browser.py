"""Crash safety, two tabs and sign-in expiry in a real browser against the app as its own process:

- the server is killed with SIGKILL at a random moment while the reader types: the server lost at most the last
  second or so of typing (one save in flight), the page says "Not saved yet" while the reader types on against the
  dead server, and after a restart and a reload nothing is lost (the browser's copy, local_copy.js); signing out
  after a confirmed save leaves no text in the browser;
- PostgreSQL stopped for 10 s while the reader types and submits: the page says "Not saved yet", submitting is
  refused with that message, and once the database is back all the text is stored and submitting succeeds;
- two tabs of one reader on one case: the older tab's save is refused with a visible notice, nothing is overwritten;
  after a reload that tab offers its refused text (kept in the browser) beside the saved one, and the reader's
  choice is saved;
- one tab whose periodic, typing and leaving-the-editor saves overlap against a slow database, for a minute, is
  never refused;
- an idle sign-in session ends: the reader is told, what they type afterwards is kept in the browser, and after
  signing in again they find all of it; a coordinator action after the idle time is refused until a fresh sign-in.
"""

import random
import threading
import time

from sqlalchemy import select

from studyapp.db.models import Report
from studyapp.db.session import open_database
from studyapp.services import accounts, design
from tests.appserver import AppProcess
from tests.browser import sign_in
from tests.pgserver import postgresql_server
from tests.studies import chest_study_with_drafts

PASSWORD = "crash-reader-password"
COORDINATOR_PASSWORD = "crash-coordinator-password"
EDITOR_FILLED = "() => document.querySelector('#report-editor textarea')?.value.length > 0"
WORDS = "heart size normal lungs clear no effusion no pneumothorax mediastinum unremarkable osseous structures intact"
NOT_SAVED_YET = "Not saved yet: the server is unreachable; keep this page open, your text is kept in this browser"
KEPT_TEXTS = "() => Object.keys(localStorage).filter((k) => k.startsWith('studyapp:text:'))"


def _serve(shared_data, tmp_path, *extra_args, autosave_seconds: float = 5.0, env=None, url=None) -> AppProcess:
    url = url or f"sqlite:///{tmp_path / 'study.db'}"
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
    editor.press("Control+End")
    return editor


def _stored_report(server) -> Report:
    """The report of the first case opened (a submission opens the next one)."""
    sessions = open_database(server.database_url)
    with sessions() as s:
        report = s.scalars(select(Report).order_by(Report.id).limit(1)).one()
    sessions.kw["bind"].dispose()
    return report


def _reader_id(server, username: str) -> int:
    sessions = open_database(server.database_url)
    with sessions() as s:
        reader_id = accounts.get_user(s, username).id
    sessions.kw["bind"].dispose()
    return reader_id


def _wait_stored(server, page, suffix: str, timeout_s: float = 30.0) -> None:
    """Wait until the stored text ends with ``suffix`` (a "Saved" status may belong to an earlier periodic save)."""
    deadline = time.monotonic() + timeout_s
    while not _stored_report(server).current_text.endswith(suffix):
        assert time.monotonic() < deadline, f"{suffix!r} was not saved within {timeout_s:.0f} s"
        page.wait_for_timeout(250)


def _reopen(page, server) -> None:
    """Load the app again in ``page`` (a reload of the open page), signing in when the server asks for it."""
    page.goto(server.url)
    page.locator("#signed-in-as >> text=Signed in as").or_(page.get_by_label("username")).first.wait_for(
        timeout=60_000)
    if page.get_by_label("username").count():
        sign_in(page, server.url, "reader1", PASSWORD)


def _type_for(editor, seconds: float, typed: list[tuple[float, str]]) -> None:
    """Type words into ``editor`` for about ``seconds``, appending (when, the editor's text then) to ``typed``."""
    began = time.monotonic()
    words = WORDS.split()
    while time.monotonic() - began < seconds:
        word = f" {words[len(typed) % len(words)]}{len(typed)}"
        editor.type(word, delay=40)
        typed.append((time.monotonic(), typed[-1][1] + word))


def test_sigkill_while_typing_loses_nothing_once_the_page_is_reloaded(shared_data, tmp_path, browser):
    server = _serve(shared_data, tmp_path)
    try:
        context = browser.new_context()  # one browser profile throughout: its localStorage holds the copy
        page = context.new_page()
        sign_in(page, server.url, "reader1", PASSWORD)
        editor = _open_first_case(page)
        start_text = editor.input_value()
        typed = [(time.monotonic(), start_text)]  # (when, the text once that word was in the editor)
        _type_for(editor, random.Random().uniform(6.0, 14.0), typed)  # a random moment, never the same twice
        killed_at = time.monotonic()
        server.kill()
        on_server = _stored_report(server)
        # typing saves go out at least every second; one may be in flight (its round trip, slow on a loaded machine)
        must_have = [text for when, text in typed if when <= killed_at - 3.0]
        assert typed[-1][1].startswith(on_server.current_text) and on_server.current_text.startswith(start_text)
        assert not must_have or len(on_server.current_text) >= len(must_have[-1]), (
            f"the server lost more than the last seconds of typing: it holds {len(on_server.current_text)} "
            f"characters, {len(must_have[-1])} were typed 3 s before the kill (of {len(typed[-1][1])})")
        assert on_server.active_seconds > 1.0

        # the reader types on against the dead server: told it is not saved, the text kept in the browser
        _type_for(editor, 3.0, typed)
        page.wait_for_selector(f"#save-progress >> text={NOT_SAVED_YET}", timeout=30_000)
        final = typed[-1][1]
        assert editor.input_value() == final

        server.start()
        _reopen(page, server)
        page.wait_for_function(f"() => document.querySelector('#report-editor textarea')?.value === {final!r}",
                               timeout=30_000)
        _wait_stored(server, page, final[-40:])
        stored = _stored_report(server)
        assert stored.current_text == final
        # the active-time timer resumes from the stored total, not from zero
        assert stored.active_seconds >= on_server.active_seconds
        page.wait_for_function(
            f"() => parseFloat(document.querySelector('#case-timer').dataset.seconds) >= {on_server.active_seconds}",
            timeout=30_000)
        page.wait_for_function(f"() => ({KEPT_TEXTS})().length === 0", timeout=30_000)  # acknowledged: dropped

        # the copy holds the reader's text and active time only (blinding: nothing about arm or source)
        editor.click()
        editor.press("Control+End")
        editor.type(" Signing out now.")
        entries = page.evaluate(f"() => ({KEPT_TEXTS})().map((k) => [k, JSON.parse(localStorage.getItem(k))])")
        reader_id = _reader_id(server, "reader1")
        assert len(entries) == 1 and entries[0][0] == f"studyapp:text:{reader_id}:{stored.assignment_id}"
        assert set(entries[0][1]) == {"text", "seconds", "at", "tab"} and entries[0][1]["text"] == final + " Signing out now."
        # signing out right away waits for the save, then leaves nothing of the text in this shared browser
        page.get_by_text("Sign out", exact=True).click()
        page.get_by_label("username").wait_for(timeout=30_000)
        assert _stored_report(server).current_text == final + " Signing out now."
        assert page.evaluate(KEPT_TEXTS) == []
        context.close()
    finally:
        server.stop()


def _answer_questions(page) -> None:
    page.locator("#finish-report").click()
    page.locator("#question-confidence").get_by_text("4 -").click()
    page.locator("#question-mental_demand").get_by_text("2 -").click()


def test_database_stopped_while_typing_says_not_saved_and_loses_nothing(shared_data, tmp_path, browser):
    with postgresql_server() as database:
        server = _serve(shared_data, tmp_path, autosave_seconds=2.0, url=database.url)
        try:
            context = browser.new_context()
            page = context.new_page()
            sign_in(page, server.url, "reader1", PASSWORD)
            editor = _open_first_case(page)
            typed = [(time.monotonic(), editor.input_value())]
            _type_for(editor, 3.0, typed)
            _wait_stored(server, page, typed[-1][1][-30:])
            _answer_questions(page)

            stopped = threading.Event()
            outage = threading.Thread(target=lambda: (database.stop(), stopped.set()))
            outage.start()
            stopped.wait(timeout=60)
            down_since = time.monotonic()
            _type_for(editor, 4.0, typed)
            page.wait_for_selector(f"#save-status >> text={NOT_SAVED_YET}", timeout=30_000)
            assert page.get_by_text("Error", exact=True).count() == 0  # never a bare "Error"
            page.locator("#confirm-submit").click()  # submitting during the outage is refused, with the reason
            page.wait_for_selector(f"#submit-message >> text={NOT_SAVED_YET}", timeout=30_000)
            assert "Not submitted" in page.locator("#submit-message").inner_text()
            _type_for(editor, max(0.0, 10.0 - (time.monotonic() - down_since)), typed)
            database.start()

            final = typed[-1][1]
            _wait_stored(server, page, final[-30:], timeout_s=60.0)  # the next saves send the whole text
            assert _stored_report(server).current_text == final
            page.wait_for_selector("#save-status >> text=Saved", timeout=30_000)
            page.locator("#confirm-submit").click()
            page.wait_for_selector("#save-status >> text=Report submitted", timeout=30_000)
            stored = _stored_report(server)
            assert stored.status == "submitted" and stored.final_text == final
            assert page.evaluate(KEPT_TEXTS) == []
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
        # the first tab's latest keys are kept in the browser, not acknowledged yet, as the second tab opens: the
        # second tab offers that text but never puts it in place by itself (saving it would make the live first
        # tab "another tab")
        opened = _stored_report(server)
        pending = opened.current_text + " A word in flight."
        first.evaluate("([name, text]) => localStorage.setItem(name, JSON.stringify("
                       "{text, seconds: 1, at: Date.now(), tab: sessionStorage.getItem('studyapp:tab')}))",
                       [f"studyapp:text:{_reader_id(server, 'reader1')}:{opened.assignment_id}", pending])
        second = context.new_page()
        second.goto(server.url)  # resumes the case in progress
        second.wait_for_function(EDITOR_FILLED,
                                 timeout=30_000)
        second.locator("#local-copy .local-copy-offer").wait_for(timeout=30_000)
        second_editor = second.locator("#report-editor textarea")
        assert second_editor.input_value() == opened.current_text
        assert _stored_report(server).version == opened.version

        first_editor.type(" Typed in the first tab.")
        _wait_stored(server, first, " Typed in the first tab.")
        second_editor.click()
        second_editor.press("Control+End")
        second_editor.type(" Typed in the second tab.")
        second.wait_for_selector("#save-status >> text=Not saved", timeout=60_000)
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
        # the refused text is kept in this browser and offered, not put in place of the newer saved text
        offer = second.locator("#local-copy .local-copy-offer")
        offer.wait_for(timeout=30_000)
        assert "the server does not have" in offer.inner_text()
        assert second_editor.input_value().endswith(" Typed in the first tab.")
        second.get_by_role("button", name="Use the kept text").click()  # the reader's choice: the second tab's text
        assert offer.count() == 0
        _wait_stored(server, second, " Typed in the second tab.")
        second.wait_for_function(f"() => ({KEPT_TEXTS})().length === 0", timeout=30_000)
        second_editor.click()
        second_editor.press("Control+End")
        second_editor.type(" Then the second.")
        _wait_stored(server, second, " Typed in the second tab. Then the second.")
        assert "Not saved" not in second.locator("#save-status").inner_text()
        context.close()
    finally:
        server.stop()


def test_one_tab_whose_saves_overlap_against_a_slow_database_is_never_refused(shared_data, tmp_path, browser):
    # every save holds its transaction 0.4 s; the periodic save runs every second, typing saves after each pause,
    # and every third word also leaves the editor and comes back: three kinds of save of one page, overlapping,
    # for a minute of typing
    server = _serve(shared_data, tmp_path, autosave_seconds=1.0, env={"STUDYAPP_TEST_SAVE_DELAY_S": "0.4"})
    try:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server.url, "reader1", PASSWORD)
        editor = _open_first_case(page)
        page.evaluate("""() => { window.saveStatuses = [];
            for (const id of ['#save-status', '#save-progress']) {
                const line = document.querySelector(id);
                new MutationObserver(() => window.saveStatuses.push(line.innerText))
                    .observe(line, {subtree: true, childList: true, characterData: true});
            }
        }""")
        words = WORDS.split()
        began = time.monotonic()
        n = 0
        while time.monotonic() - began < 60.0:
            n += 1
            editor.type(f" {words[n % len(words)]}{n}", delay=20)
            page.evaluate("() => window.studySave.now()")  # a typing save at once, beside the timer's
            if n % 3 == 0:
                page.locator("#case-timer").click()  # leaving the editor saves too
                editor.click()
                editor.press("Control+End")  # the end of the text ("End" ends the wrapped line clicked on)
            page.wait_for_timeout(random.uniform(100, 700))
        typed = editor.input_value()
        _wait_stored(server, page, typed, timeout_s=60.0)  # all of it: the last words alone may match earlier
        statuses = page.evaluate("() => window.saveStatuses")
        assert statuses and not [s for s in statuses if "Not saved" in s or "another tab" in s], statuses
        assert "Saving..." in statuses and any(s.startswith("Saved ") for s in statuses)  # what the reader saw
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
        page.wait_for_selector("#save-status >> text=Saved", timeout=60_000)
        # periodic autosaves of unchanged text are not activity: the session ends and the screen says so
        page.wait_for_selector("#save-status >> text=Signed out", timeout=30_000)
        assert "without activity" in page.locator("#save-status").inner_text()
        link = page.locator("#save-status a", has_text="Sign in again")
        assert link.get_attribute("href") == "/logout"
        editor.type(" Typed after the sign-out.")  # refused by the server, kept in the browser
        page.wait_for_timeout(1_500)
        assert not _stored_report(server).current_text.endswith(" Typed after the sign-out.")
        page.goto(server.url + "/logout")  # what the link does (ends the session, clears the cookie)
        page.get_by_label("username").wait_for(timeout=30_000)
        sign_in(page, server.url, "reader1", PASSWORD)
        page.wait_for_function(
            "() => document.querySelector('#report-editor textarea')?.value"
            ".endsWith(' Typed before going idle. Typed after the sign-out.')", timeout=30_000)
        _wait_stored(server, page, " Typed before going idle. Typed after the sign-out.")
        context.close()

        context = browser.new_context()
        page = context.new_page()
        sign_in(page, server.url, "coord", COORDINATOR_PASSWORD)
        page.wait_for_timeout(7_000)
        page.get_by_role("button", name="Refresh").click()
        page.get_by_text("signed out after 0.1 minutes without activity").first.wait_for(timeout=15_000)
        page.reload()  # still signed out: the sign-in form says so instead of showing the coordinator's data
        page.get_by_text("signed out after a time without activity").wait_for(timeout=30_000)
        page.goto(server.url + "/logout")
        sign_in(page, server.url, "coord", COORDINATOR_PASSWORD)  # a fresh sign-in works again
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_timeout(1_000)
        assert page.get_by_text("without activity").count() == 0
        context.close()
    finally:
        server.stop()
