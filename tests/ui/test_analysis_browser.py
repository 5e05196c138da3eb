"""A coordinator runs the reader-study analysis from the app on a simulated study and sees the figures."""

from analysis.simulation import simulate_study, write_study
from studyapp.db.models import ROLE_COORDINATOR
from studyapp.services import accounts
from tests.browser import sign_in


def test_coordinator_runs_analysis(serve_app, browser):
    app = serve_app(lambda s: accounts.add_user(s, "coord", "coordinator-password", role=ROLE_COORDINATOR))
    write_study(app.sessions, simulate_study(n_readers=4, n_cases=6, seed=1, name="Simulated study"))
    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_role("tab", name="Analysis").click()
    page.locator("#analysis-run").click()
    page.wait_for_selector("#analysis-status >> text=Simulated study", timeout=120_000)
    status = page.locator("#analysis-status").inner_text()
    assert "judge" in status and "reference arm template" in status
    page.wait_for_selector(".js-plotly-plot", timeout=30_000)
    assert page.locator(".js-plotly-plot").count() >= 4
    page.wait_for_function("() => document.querySelector('#analysis-files').innerText.includes('report')",
                           timeout=30_000)
    page.close()
