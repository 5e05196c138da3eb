"""The blinded comparison screen fits common screens: at 1366 x 768 and 1600 x 1000 both report texts, the image
and the choice are visible without scrolling the page, with short reports and with long ones (which scroll in
their own boxes); the comments and Submit are in a column that scrolls by itself. Screenshots go to the test's
folder (or $STUDYAPP_SCREENSHOTS)."""

import os
from pathlib import Path

import pandas as pd
import pytest

from studyapp.services import accounts, comparisons, ingest, studies
from tests.browser import sign_in

PASSWORD = "reader-one-password"
LONG = "\n".join(f"{i}. Finding sentence number {i} describing the lungs, heart and bones in some detail."
                 for i in range(1, 31)) + "\nIMPRESSION: long report."


def _fill(shared_data, tmp_path, text: str):
    def fill(session):
        study = studies.create_study(session, "CXR comparison")
        assert ingest.import_folder(session, study, shared_data / "dicom" / "cxr").counts["failed"] == 0
        rows = [{"case_key": case.case_key, "source_a_name": "first-source", "text_a": f"A {i}. {text}",
                 "source_b_name": "second-source", "text_b": f"B {i}. {text}"} for i, case in enumerate(study.cases)]
        pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
        reader = accounts.add_user(session, "reader1", PASSWORD)
        accounts.enroll_reader(session, study, reader)
        cset = comparisons.import_comparison_set(session, study, "Round 1", tmp_path / "pairs.csv", "second-source",
                                                 seed=13)
        comparisons.assign_readers(session, cset, readers=[reader])

    return fill


@pytest.mark.parametrize("text", ["Findings: Heart size normal. Impression: no acute disease.", LONG],
                         ids=["short", "long"])
@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 1600, "height": 1000}],
                         ids=["1366x768", "1600x1000"])
def test_comparison_screen_fits(serve_app, browser, shared_data, tmp_path, viewport, text):
    app = serve_app(_fill(shared_data, tmp_path, text))
    page = browser.new_page(viewport=viewport)
    sign_in(page, app.url, "reader1", PASSWORD)
    page.get_by_role("tab", name="Comparison").click()
    page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)
    page.wait_for_timeout(500)
    shots = Path(os.environ.get("STUDYAPP_SCREENSHOTS", tmp_path))
    page.screenshot(path=str(shots / f"compare-{viewport['width']}-{'long' if text == LONG else 'short'}.png"))
    assert page.evaluate("() => document.scrollingElement.scrollHeight") <= viewport["height"]
    for selector in ("#report-a", "#report-b", ".sv-root:visible", "#compare-choice"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["y"] + box["height"] <= viewport["height"], f"{selector} is below the fold"
    for side in ("a", "b"):  # the text shown is the whole report (a long one scrolls inside its box)
        assert page.locator(f"#report-{side}").inner_text().endswith(text.splitlines()[-1])
    # the image takes most of the height; the comments and Submit are in a column that scrolls by itself
    assert page.locator(".sv-root:visible").first.bounding_box()["height"] >= 0.55 * viewport["height"]
    side = page.locator("#compare-side").first
    assert side.evaluate("(el) => getComputedStyle(el).overflowY") == "auto"
    page.locator("#compare-submit").scroll_into_view_if_needed()
    submit = page.locator("#compare-submit").bounding_box()
    assert submit["y"] + submit["height"] <= viewport["height"]
    assert page.evaluate("() => document.scrollingElement.scrollTop") == 0
    page.close()
