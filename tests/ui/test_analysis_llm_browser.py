"""A coordinator runs the analysis with the LLM judge (``STUDYAPP_LLM_JUDGE_URL``) pointed at a loopback
OpenAI-compatible server that cannot answer for two readers' reports: the app says how many peer comparisons
failed and lists each, per report, among the left-out items."""

from analysis.simulation import simulate_study, write_study
from studyapp.db.models import ROLE_COORDINATOR
from studyapp.services import accounts
from tests.browser import sign_in
from tests.chatserver import chat_server, pair_prompt  # noqa: F401 (fixture)


def test_failed_llm_comparisons_are_shown_per_report(serve_app, browser, chat_server, monkeypatch):
    def answer(messages):
        reference = pair_prompt(messages).split("\n\nCandidate")[0]
        return "Sorry, I cannot help." if "Cardiomediastinal" in reference else '{"corrections": []}'

    server = chat_server(answer)
    monkeypatch.setenv("STUDYAPP_LLM_JUDGE_URL", server.url)
    monkeypatch.setenv("STUDYAPP_LLM_JUDGE_MODEL", "local-model")
    app = serve_app(lambda s: accounts.add_user(s, "coord", "coordinator-password", role=ROLE_COORDINATOR))
    write_study(app.sessions, simulate_study(n_readers=3, n_cases=4, seed=4, name="LLM judged study"))
    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_role("tab", name="Analysis").click()
    page.locator("#analysis-run").click()
    page.wait_for_selector("#analysis-status >> text=LLM judged study", timeout=180_000)
    status = page.locator("#analysis-status").inner_text()
    assert "llm:local-model fineradscore-adapted-2" in status
    # readers 01 and 02 word their reports their own way: every comparison against them fails (5 attempts each)
    assert ("Warning: The discrepancy judge failed on 16 peer comparison(s): 8 reading(s) have a peer discrepancy "
            "over fewer peers and 4 have none") in status
    page.get_by_role("button", name="Left out (").click()
    page.wait_for_selector("#analysis-skipped >> text=every peer comparison failed", timeout=30_000)
    skipped = page.locator("#analysis-skipped").inner_text()
    assert skipped.count("vs peer reader0") == 16 and skipped.count("malformed answer: answer is not JSON") == 16
    assert skipped.count("peer discrepancy over 1 of 2 peers: 1 comparison(s) failed") == 8
    assert skipped.count("every peer comparison failed") == 4
    page.close()
