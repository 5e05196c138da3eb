"""The blinded comparison screen fits common screens: at 1366 x 768 and 1600 x 1000 both report texts, the image
and the choice are visible without scrolling the page (screenshots in the test's folder)."""

import os
from pathlib import Path

import pytest

from tests.browser import sign_in
from tests.comparisons.test_compare_browser import PASSWORD, _fill


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 1600, "height": 1000}])
def test_comparison_screen_fits(serve_app, browser, shared_data, tmp_path, viewport):
    app = serve_app(_fill(shared_data, tmp_path))
    page = browser.new_page(viewport=viewport)
    sign_in(page, app.url, "reader1", PASSWORD)
    page.get_by_role("tab", name="Comparison").click()
    page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)
    page.wait_for_timeout(500)
    shots = Path(os.environ.get("STUDYAPP_SCREENSHOTS", tmp_path))
    page.screenshot(path=str(shots / f"compare-{viewport['width']}.png"))
    assert page.evaluate("() => document.scrollingElement.scrollHeight") <= viewport["height"]
    for selector in ("#report-a", "#report-b", ".sv-root:visible", "#compare-choice"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["y"] + box["height"] <= viewport["height"], f"{selector} is below the fold"
    # the image takes most of the height; the comments and Submit are in a column that scrolls by itself
    assert page.locator(".sv-root:visible").first.bounding_box()["height"] >= 0.55 * viewport["height"]
    side = page.locator("#compare-side").first
    assert side.evaluate("(el) => getComputedStyle(el).overflowY") == "auto"
    page.locator("#compare-submit").scroll_into_view_if_needed()
    submit = page.locator("#compare-submit").bounding_box()
    assert submit["y"] + submit["height"] <= viewport["height"]
    assert page.evaluate("() => document.scrollingElement.scrollTop") == 0
    page.close()
