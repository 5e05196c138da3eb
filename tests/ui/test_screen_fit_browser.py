"""The demo in a real browser at 1600 x 1000 (a 1080p monitor less the browser's bars): the reading screen fits
without scrolling with the Likert questions and Submit beside the editor, no "Use via API" link unless turned on,
and the comparison tab says plainly that no set is assigned."""

import pytest

from studyapp import demo
from studyapp.config import Settings
from tests.browser import sign_in

VIEWPORT = {"width": 1600, "height": 1000}


def _demo(serve_app, tmp_path):
    settings = Settings(data_dir=tmp_path)
    app = serve_app(lambda session: demo.ensure_demo(session, settings))
    lines = (tmp_path / "demo-credentials.txt").read_text().splitlines()
    return app, {line.split()[1]: line.split()[2] for line in lines}


def _bottom(page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not displayed"
    return box["y"] + box["height"]


def test_reading_screen_fits_without_scrolling(serve_app, browser, tmp_path):
    app, passwords = _demo(serve_app, tmp_path)
    page = browser.new_page(viewport=VIEWPORT)
    sign_in(page, app.url, "reader1", passwords["reader1"])
    page.locator("#worklist label").first.click()
    page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)
    page.locator("#finish-report").click()
    page.locator("#confirm-submit").wait_for(timeout=10_000)
    page.wait_for_timeout(500)

    assert page.evaluate("() => document.scrollingElement.scrollHeight") <= VIEWPORT["height"]
    for selector in ("#confirm-submit", "#question-mental_demand", "#report-editor", ".sv-root:visible",
                     ".sv-root:visible .sv-bar"):  # the viewer with its window, preset and slice controls
        assert _bottom(page, selector) <= VIEWPORT["height"], f"{selector} is below the fold"
    # the image takes the height left over, and the Likert questions sit beside the editor, right of the image
    viewer = page.locator(".sv-root:visible").first.bounding_box()
    assert viewer["height"] >= 550
    assert page.locator("#likert-panel").first.bounding_box()["x"] > viewer["x"] + 400
    # the study's description is folded away: study selector and banner take under 200 px above the worklist
    top = page.locator("#reading-screen").first.bounding_box()["y"]
    assert page.locator("#worklist").first.bounding_box()["y"] - top < 200
    assert page.get_by_text("Use via API").count() == 0
    page.close()


def test_comparison_tab_without_a_set_says_so(serve_app, browser, tmp_path):
    app, passwords = _demo(serve_app, tmp_path)
    page = browser.new_page(viewport=VIEWPORT)
    sign_in(page, app.url, "reader2", passwords["reader2"])
    page.get_by_role("tab", name="Comparison").click()
    page.wait_for_selector("#compare-empty >> text=No comparison set yet", timeout=30_000)
    assert not page.locator("#compare-choice").is_visible()
    assert not page.locator("#compare-submit").is_visible()
    assert not page.locator("#compare-pairs").is_visible()
    page.close()


@pytest.mark.parametrize("shown", [False, True])
def test_api_link_only_when_turned_on(serve_app, browser, tmp_path, monkeypatch, shown):
    monkeypatch.setenv("STUDYAPP_SHOW_API", "1" if shown else "0")
    app, passwords = _demo(serve_app, tmp_path)
    page = browser.new_page(viewport=VIEWPORT)
    sign_in(page, app.url, "coordinator", passwords["coordinator"])
    page.wait_for_timeout(1000)
    assert page.get_by_text("Use via API").count() == (1 if shown else 0)
    page.close()
