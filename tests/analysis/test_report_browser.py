"""report.html as a reader sees it in chromium: section titles in words, the interval method with the resample count
actually used, arms in design order under the study's labels, every bar drawn with its CI and n (small bins grey),
the blinded comparison's preference rates, mixed-model p-values withheld for untrustworthy fits."""

import dataclasses

import pytest

from analysis import analyse_frames
from analysis.figures import GREY, MIN_BIN_N
from analysis.report import FIGURE_TITLES, TABLE_TITLES
from analysis.simulation import simulate_outcomes, simulate_study


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    frames = simulate_study(n_readers=5, n_cases=12, seed=3)
    judgements = simulate_outcomes(n_readers=5, n_cases=12, judges_per_pair=2, seed=3).judgements
    frames = dataclasses.replace(frames, judgements=judgements.assign(set="blinded", candidate_source="draft:model"))
    result = analyse_frames(frames, tmp_path_factory.mktemp("report"), n_resamples=250)
    return result, result.files["report.html"]


def test_report_in_a_browser(report, browser):
    result, path = report
    page = browser.new_page()
    page.goto(path.as_uri())
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot').length === {len(result.figures)}",
                           timeout=60_000)
    titles = page.locator("h2").all_inner_texts()
    assert titles == ([FIGURE_TITLES[name] for name in result.figures] + list(TABLE_TITLES.values())
                      + ["Left out, and why", "What each column means"])
    assert page.locator("#resample-count").inner_text() == "250"
    method = page.locator("#interval-method").inner_text()
    assert "Primary intervals" in method and "Why primary" in method and "not shown" in method
    assert "is not estimable: its bounds are empty and its ci_note column says why" in method
    assert "Arms in design order: Normal template (template), GPT-4o draft (llm), MedVersa draft (model)" in (
        page.locator("body").inner_text())

    # Fig. 5c as drawn: legend in design order under the labels, error bars on every bar, n on every bar, grey
    # exactly where n < MIN_BIN_N
    plots = page.locator(".js-plotly-plot")
    fig5c = plots.nth(list(result.figures).index("fig5c_discrepancy_by_interval"))
    assert fig5c.locator(".legendtext").all_text_contents() == ["Normal template", "GPT-4o draft", "MedVersa draft"]
    drawn = fig5c.evaluate("""gd => gd.data.map(t => ({name: t.name, colours: t.marker.color, text: t.text,
        errors: t.error_y.array.length, bars: t.y.length}))""")
    table = result.tables["discrepancy_by_interval"]
    for trace in drawn:
        assert trace["errors"] == trace["bars"] and all(text.startswith("n=") for text in trace["text"])
        for text, colour in zip(trace["text"], trace["colours"]):
            assert (colour == GREY) == (int(text[2:].split(" ")[0]) < MIN_BIN_N)
    assert any(colour == GREY for trace in drawn for colour in trace["colours"]) == bool(
        (table["n_readings"] < MIN_BIN_N).any())
    assert fig5c.locator("g.errorbar").count() == len(table)
    assert all("n=" in text for text in fig5c.locator("text.bartext").all_text_contents())

    # the blinded comparison: per case (primary) and per judgement, in the figure and the table
    assert "per_judgement_equivalent_or_better" in page.locator("#table-preference_rates").inner_text()
    preference = plots.nth(list(result.figures).index("preference_rates"))
    assert preference.locator("g.errorbar").count() == 3
    # mixed models: a fit that did not converge or warned shows no p-value
    models = result.tables["mixed_models"]
    untrusted = (~models["converged"].astype(bool) | models["warnings"].astype(bool)).sum()
    assert page.locator("#table-mixed_models").inner_text().count("withheld: fit did not converge or warned") == (
        untrusted)
    page.close()
