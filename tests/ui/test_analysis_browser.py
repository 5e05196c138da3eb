"""A coordinator runs the reader-study analysis from the app on a simulated study: the headline numbers with CIs
first, the figures in sub-tabs, what was left out folded away."""

from analysis.simulation import simulate_study, write_study
from studyapp.db.models import ROLE_COORDINATOR
from studyapp.services import accounts, studies
from studyapp.ui.analysis_tab import NO_PREFERENCES
from tests.browser import sign_in


def test_coordinator_runs_analysis(serve_app, browser):
    app = serve_app(lambda s: accounts.add_user(s, "coord", "coordinator-password", role=ROLE_COORDINATOR))
    write_study(app.sessions, simulate_study(n_readers=4, n_cases=6, seed=1, name="Simulated study"))
    with app.sessions.begin() as session:
        studies.create_study(session, "Empty study")
    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_role("tab", name="Analysis").click()
    page.locator("#analysis-run").click()
    page.wait_for_selector("#analysis-status >> text=Simulated study", timeout=120_000)
    status = page.locator("#analysis-status").inner_text()
    assert "judge" in status and "reference arm Normal template (template)" in status
    assert "1,000 resamples per one-way bootstrap" in status
    headline = page.locator("#analysis-headline").inner_text()
    assert "Active time (s per case)" in headline and "95% CI" in headline and "vs Normal template" in headline
    rows = [line for line in headline.splitlines() if line.strip()]
    arms = ["Normal template (template)", "GPT-4o draft (llm)", "MedVersa draft (model)"]
    assert [next(i for i, line in enumerate(rows) if line.strip().startswith(arm)) for arm in arms] == sorted(
        next(i for i, line in enumerate(rows) if line.strip().startswith(arm)) for arm in arms)  # design order
    # no blinded comparison in this study: a plain sentence where the preference rates go
    assert page.locator("#analysis-preferences").inner_text().strip() == NO_PREFERENCES
    # the first figure is shown; the others are one click away in their sub-tabs
    page.wait_for_selector(".js-plotly-plot", timeout=30_000)
    page.get_by_role("tab", name="Template use").click()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=30_000)
    # the left-out list is folded: its heading counts the items, the lines are hidden until opened
    left_out = page.get_by_role("button", name="Left out (")
    assert left_out.count() == 1
    page.wait_for_timeout(300)
    assert not page.locator("#analysis-skipped").is_visible()
    assert page.evaluate("() => document.scrollingElement.scrollHeight") < 3000
    page.wait_for_function("() => document.querySelector('#analysis-files').innerText.includes('report')",
                           timeout=30_000)
    # another study chosen in the Coordinator tab: the Analysis tab follows and drops the results shown so far
    page.get_by_role("tab", name="Coordinator").click()
    page.locator("#coord-study input").click()
    page.get_by_role("option", name="Empty study").click()
    page.get_by_role("tab", name="Analysis").click()
    page.wait_for_function("() => document.querySelector('#analysis-study input').value === 'Empty study'",
                           timeout=30_000)
    assert "Simulated study" not in page.locator("#analysis-status").inner_text()
    assert page.locator(".js-plotly-plot").count() == 0
    page.close()
