"""The demo in a real browser at 1600 x 1000 (a 1080p monitor less the browser's bars): the reading screen fits
without scrolling with the Likert questions and Submit beside the editor, no "Use via API" link unless turned on,
and the comparison tab says plainly that no set is assigned."""

import pytest

from studyapp import demo
from studyapp.config import Settings
from tests.browser import sign_in
from tests.ui.test_viewer_client_browser import text_off_the_image

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
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")  # laid out

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


@pytest.mark.parametrize("viewport", [VIEWPORT, {"width": 1366, "height": 768}])
def test_the_image_gets_the_screen(serve_app, browser, tmp_path, viewport):
    """The viewer takes most of the width and the height left by the header, on a dark background; worklist and
    report are narrow columns, the report column scrolls by itself; the CT hangs 1 + 2 (the live tile large); the
    corner text is off the image."""
    app, passwords = _demo(serve_app, tmp_path)
    page = browser.new_page(viewport=viewport)
    sign_in(page, app.url, "reader1", passwords["reader1"])
    for label in ("CR chest", "CT partialbody"):
        page.locator("#worklist label", has_text=label).click()
        page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(tmp_path / f"reading-{viewport['width']}-{label.split()[0]}.png"))
        assert page.evaluate("() => document.scrollingElement.scrollHeight") <= viewport["height"]
        viewer = page.locator(".sv-root:visible").first.bounding_box()
        assert viewer["width"] >= 0.58 * viewport["width"]
        assert viewer["y"] + viewer["height"] >= viewport["height"] - 90  # down to the fallback view's bar
        background = page.locator(".sv-root:visible").evaluate("(el) => getComputedStyle(el).backgroundColor")
        assert background == "rgb(0, 0, 0)"
        assert text_off_the_image(page) >= 1
    # the study's whole name is readable in the narrow column (wrapped, nothing under an arrow or cut off)
    study = page.locator("#reader-study label").first
    assert study.inner_text() == demo.DEMO_STUDY
    assert study.evaluate("(el) => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight")
    main = page.locator(".sv-root:visible .sv-main").bounding_box()
    for stack in (1, 2):  # coronal and sagittal beside the large axial tile
        tile = page.locator(f".sv-root:visible .sv-tile[data-stack='{stack}']").bounding_box()
        assert tile["x"] >= main["x"] + main["width"] and tile["width"] < main["width"]
    assert main["width"] >= 0.38 * viewport["width"]
    side = page.locator("#reading-side").first
    assert side.evaluate("(el) => getComputedStyle(el).overflowY") == "auto"
    assert side.bounding_box()["x"] > viewer["x"] + viewer["width"]
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
