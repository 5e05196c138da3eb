"""A coordinator runs the analysis of a study whose blinded comparison set was judged by three readers (two per
pair) and left unsubmitted by a fourth: the results tab shows the per-case preference rates overall, for normal
and for abnormal cases with their 95% CIs and numbers of cases, judgements and readers, and the per-judgement rate
labelled as such, exactly the values of the analysis' ``preference_rates`` table."""

import re

from sqlalchemy import select

from analysis import run_analysis
from analysis.simulation import simulate_study, write_study
from studyapp.db.models import ROLE_COORDINATOR, ReaderStudy, User
from studyapp.services import accounts, comparisons, judging
from tests.browser import sign_in

SHARE = re.compile(r"^([\d.]+)% \(95% CI ([\d.]+)% to ([\d.]+)%\)$")


def _judge_set(sessions, study_name: str) -> int:
    """A set of every case judged by two readers each; readers 0-2 submit, reader 3 judges all its pairs but does
    not submit. Choices vary by reader and pair. Returns how many judgements reader 3 made."""
    with sessions.begin() as session:
        study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == study_name))
        cset = comparisons.create_comparison_set(session, study, "blinded", "draft:template", "draft:model",
                                                 "draft:model", seed=5, readers_per_pair=2)
        comparisons.assign_readers(session, cset)
        for index in range(4):
            reader = session.scalar(select(User).where(User.username == f"reader{index:02d}"))
            pairs = judging.blinded_pairs(session, reader, cset.id)
            for position, pair in enumerate(pairs):
                judging.save_judgement(session, reader, pair.pair_id, ("A", "B", "equivalent")[(index + position) % 3])
            if index < 3:
                judging.submit_comparison_set(session, reader, cset.id)
        return len(pairs)


def _shown_share(cell: str, estimate: float, low: float, high: float) -> None:
    match = SHARE.match(cell.strip())
    assert match, cell
    for shown, value in zip(match.groups(), (estimate, low, high)):
        assert abs(float(shown) / 100 - value) <= 0.0005 + 1e-12, (cell, estimate, low, high)


def test_results_tab_shows_preference_rates(serve_app, browser):
    app = serve_app(lambda s: accounts.add_user(s, "coord", "coordinator-password", role=ROLE_COORDINATOR))
    write_study(app.sessions, simulate_study(n_readers=4, n_cases=10, seed=2, name="Compared study"))
    unsubmitted = _judge_set(app.sessions, "Compared study")
    expected = run_analysis(app.sessions, "Compared study").tables["preference_rates"].set_index("group")
    assert unsubmitted > 0 and expected.loc["overall", "n_judgements"] == 2 * 10 - unsubmitted
    assert expected.loc["normal", "n_cases"] > 0 and expected.loc["abnormal", "n_cases"] > 0

    page = browser.new_page()
    sign_in(page, app.url, "coord", "coordinator-password")
    page.get_by_role("tab", name="Analysis").click()
    page.locator("#analysis-run").click()
    page.wait_for_selector("#analysis-preferences >> text=Blinded comparison", timeout=180_000)
    shown = page.locator("#analysis-preferences")
    assert "set blinded: share with the candidate draft:model equivalent or better" in shown.inner_text()
    headers = [h.strip() for h in shown.locator("thead th").all_inner_texts()]
    assert headers == ["cases", "per case (primary)", "cases (n)", "judgements (n)", "readers (n)", "per judgement"]
    rows = [[c.strip() for c in row.locator("td").all_inner_texts()] for row in shown.locator("tbody tr").all()]
    assert [row[0] for row in rows] == ["overall", "normal", "abnormal"]
    for group, per_case, n_cases, n_judgements, n_readers, per_judgement in rows:
        want = expected.loc[group]
        _shown_share(per_case, want["equivalent_or_better"], want["ci_low"], want["ci_high"])
        _shown_share(per_judgement, want["per_judgement_equivalent_or_better"], want["per_judgement_ci_low"],
                     want["per_judgement_ci_high"])
        assert [int(n_cases), int(n_judgements), int(n_readers)] == [
            want["n_cases"], want["n_judgements"], want["n_readers"]]
    assert rows[0][4] == "3"  # the reader who did not submit is not counted
    # the figure with its three bars and their CIs, one sub-tab away
    page.get_by_role("tab", name="Preferences").click()
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some("
                           "p => p.textContent.includes('share of cases') && p.querySelectorAll('g.errorbar').length)",
                           timeout=30_000)
    page.close()
