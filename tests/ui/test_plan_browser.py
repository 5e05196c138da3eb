"""A coordinator plans a study in the analysis tab's Plan view: with a pilot study, progress while simulating, the
smallest designs, the power curve, the table and the files; impossible assumptions are refused by name and change
nothing on the screen."""

import json
from pathlib import Path

from analysis.simulation import simulate_study, write_study
from studyapp.db.models import ROLE_COORDINATOR
from studyapp.services import accounts
from tests.browser import sign_in


def test_coordinator_plans_a_study_from_a_pilot(serve_app, browser):
    app = serve_app(lambda s: accounts.add_user(s, "coord", "coordinator-password", role=ROLE_COORDINATOR))
    write_study(app.sessions, simulate_study(n_readers=4, n_cases=12, seed=1, name="Pilot study"))
    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_role("tab", name="Analysis").click()
    page.get_by_role("button", name="Plan a study: power and sample size").click()
    page.locator("#plan-readers textarea, #plan-readers input").first.fill("4")
    page.locator("#plan-cases textarea, #plan-cases input").first.fill("12,24")
    page.locator("#plan-reps input").fill("4")
    page.locator("#plan-alpha input").fill("1.5")
    page.locator("#plan-run").click()
    page.wait_for_selector("text=test.alpha = 1.5: must be in (0, 1)", timeout=60_000)
    assert page.locator("#plan-status").inner_text().strip() == ""

    page.locator("#plan-alpha input").fill("0.05")
    page.locator("#plan-pilot input").check()
    page.locator("#plan-run").click()
    page.wait_for_selector("text=Simulated studies", timeout=120_000)  # the progress bar while simulating
    page.wait_for_selector("#plan-status >> text=Smallest design with power", timeout=180_000)
    status = page.locator("#plan-status").inner_text()
    assert "time saved (model)" in status and "preference (candidate)" in status and "all comparisons" in status
    assert "4 simulated studies per design, seed 0" in status
    assert "pilot study 'Pilot study' (" in status and "Plan view (" in status
    page.locator("#plan-curve").scroll_into_view_if_needed()
    page.wait_for_selector("#plan-curve .js-plotly-plot", timeout=60_000)
    table = page.locator("#plan-table").inner_text()
    assert "discrepancy" in table and "preference" in table
    page.wait_for_selector("#plan-files a[download='plan.json']", timeout=30_000)
    for name in ("power.csv", "studies.csv", "assumptions.yaml", "power_curve.html"):
        assert page.locator(f"#plan-files a[download='{name}']").count() == 1
    link = page.locator("#plan-files a[download='plan.json']")
    with page.expect_download() as download:
        link.click()
    record = json.loads(Path(download.value.path()).read_text())
    assert record["sources"]["time.saved_minutes_per_100"] == "pilot study 'Pilot study'"
    assert record["assumptions"]["design"] == {"readers": [4], "cases": [12, 24], "cases_per_reader": None}
