"""A graceful restart in a real browser against the app as its own process: SIGTERM while the reader types; the
server takes what was typed before the signal, finishes its saves and exits 0; when the next server answers, the
open page reloads itself still signed in, shows all that text, and carries on saving."""

import random
import signal
import time

from tests.appserver import AppProcess
from tests.browser import sign_in
from tests.ui.test_crash_safety_browser import PASSWORD, WORDS, _open_first_case, _serve, _stored_report


def _wait_stored_text(server, page, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (stored := _stored_report(server).current_text) != text:
        assert time.monotonic() < deadline, (
            f"not stored within {timeout_s:.0f} s: {len(stored)} of {len(text)} characters "
            f"(status: {page.locator('#save-status').inner_text()!r})")
        page.wait_for_timeout(250)


def test_sigterm_while_typing_loses_nothing_and_needs_no_sign_in(shared_data, tmp_path, browser):
    server: AppProcess = _serve(shared_data, tmp_path)
    try:
        page = browser.new_context().new_page()
        sign_in(page, server.url, "reader1", PASSWORD)
        editor = _open_first_case(page)
        words = WORDS.split()
        stop_after = random.Random().uniform(2.0, 6.0)  # a random moment, never the same twice
        began, n = time.monotonic(), 0
        while time.monotonic() - began < stop_after:
            editor.type(f" {words[n % len(words)]}{n}", delay=40)
            n += 1
        server.process.send_signal(signal.SIGTERM)  # the last word's save is pending or in flight
        typed = editor.input_value()
        assert server.process.wait(timeout=60) == 0  # drained and exited by itself, not killed
        log = server.log_path.read_text()
        assert "stopping: every action finished" in log and "Traceback" not in log
        assert _stored_report(server).current_text == typed  # nothing typed before the signal is lost

        page.evaluate("window.beforeRestart = true")  # gone once the page has reloaded
        server.start()
        # Gradio's page reloads itself once the server answers again (it asks every 2 s); still signed in, the case
        # reopened. Typing before that reload would go into the old page while it unloads.
        page.wait_for_function(
            "(typed) => !window.beforeRestart"
            " && document.querySelector('#report-editor textarea')?.value === typed"
            " && !document.querySelector('#report-editor textarea').disabled", arg=typed, timeout=60_000)
        page.wait_for_selector("#signed-in-as >> text=Signed in as", timeout=30_000)
        assert "/login" not in page.url
        editor = page.locator("#report-editor textarea")
        editor.click()
        editor.press("Control+End")
        editor.type(" Typed after the restart.", delay=40)
        _wait_stored_text(server, page, typed + " Typed after the restart.")
    finally:
        server.stop()
