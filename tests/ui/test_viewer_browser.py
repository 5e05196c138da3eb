"""The server-rendered view (the viewer's fallback) in a real browser on the demo's real CT series: slice navigation and a CT window preset change the
rendered image the reader sees; returning to the case after another one finds the same slice and window."""

import re

from studyapp import demo
from studyapp.config import Settings
from tests.browser import sign_in, worklist_label


def test_ct_slices_and_window_presets(serve_app, browser, tmp_path):
    settings = Settings(data_dir=tmp_path)
    app = serve_app(lambda session: demo.ensure_demo(session, settings))
    passwords = {line.split()[1]: line.split()[2] for line in (tmp_path / "demo-credentials.txt").read_text().splitlines()}
    with app.sessions() as session:  # the reader whose worklist holds the CT case
        ct_reader, ct_label = worklist_label(session, "DEMO-4 (CT)")
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    sign_in(page, app.url, ct_reader, passwords[ct_reader])
    page.locator("#worklist label", has_text=ct_label).click()
    page.get_by_text("Server-rendered view (fallback and reference)").click()
    page.wait_for_selector("#viewer-message >> text=Slice 11 of 20", timeout=30_000)
    image = page.locator("#viewer-image img")
    first = image.get_attribute("src")
    # the data range of the slice is shown beside the window inputs (this CT slice's HU range)
    page.get_by_text(re.compile(r"data range -\d+ to \d+")).first.wait_for(timeout=10_000)  # air below 0 HU

    slice_box = page.get_by_label("Slice / frame").first  # the slider's number box
    slice_box.fill("3")
    slice_box.press("Enter")
    page.wait_for_selector("#viewer-message >> text=Slice 3 of 20", timeout=30_000)
    page.wait_for_function("(old) => document.querySelector('#viewer-image img').src !== old", arg=first)
    third = image.get_attribute("src")

    page.get_by_label("Window preset").click()
    page.get_by_role("option", name="lung").click()
    page.wait_for_function("(old) => document.querySelector('#viewer-image img').src !== old", arg=third,
                           timeout=30_000)
    assert page.get_by_label("Window center").input_value() == "-600"
    assert page.get_by_label("Window width").input_value() == "1500"
    lung = image.get_attribute("src")

    # another case, then back: slice 3 at the lung window, as left
    page.locator("#worklist label").filter(has_not_text=ct_label).first.click()
    page.wait_for_function("(old) => document.querySelector('#viewer-image img').src !== old", arg=lung,
                           timeout=30_000)
    page.locator("#worklist label", has_text=ct_label).click()
    page.wait_for_selector("#viewer-message >> text=Slice 3 of 20", timeout=30_000)
    assert page.get_by_label("Window center").input_value() == "-600"
    assert page.get_by_label("Window width").input_value() == "1500"
    assert page.get_by_label("Window preset").input_value() == "lung"
    page.wait_for_function("(old) => document.querySelector('#viewer-image img').src === old", arg=lung,
                           timeout=30_000)
    page.close()
