"""The hanging protocol in Debian chromium on the demo's real 20-slice CT: the axial series and its coronal and
sagittal reformats as tiles (the live one large, the others in a column beside it) of the reformat's shape (512 x 41 at 0.98 mm square pixels), labelled
with the plane and the study date, drawn with the server's values; a click enlarges a tile, which then takes
window/level, and Enter goes back to the tiles."""

import numpy as np

from studyapp.db.models import Case
from studyapp.dicom import display, reformat
from tests.ui.test_viewer_client_browser import NO_WEBGL, VIEWER, _greys, _open_case, _wait_ready


def _tile_pixels(page, stack):
    return np.array(page.locator(f"{VIEWER} .sv-tile[data-stack='{stack}'] canvas").evaluate(
        "(c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"), dtype=np.int16)


def test_ct_hangs_axial_coronal_sagittal_and_a_click_enlarges_one(serve_app, browser, tmp_path):
    page, files, app, _ = _open_case(serve_app, browser, tmp_path, "DEMO-4 (CT)", init_script=NO_WEBGL)
    with app.sessions() as session:
        date = session.query(Case).filter(Case.case_key == "DEMO-4 (CT)").one().study_date
    _wait_ready(page, 11)
    root = page.locator(VIEWER)
    assert root.get_attribute("data-layout") == "tiles"
    volume = reformat.load_volume(tuple(files[0]))
    for stack, plane in ((1, "coronal"), (2, "sagittal")):
        tile = page.locator(f"{VIEWER} .sv-tile[data-stack='{stack}']")
        page.wait_for_selector(f"{VIEWER} .sv-tile[data-stack='{stack}'][data-status='ready']", timeout=30_000)
        assert tile.locator("canvas").evaluate("(c) => [c.width, c.height]") == [512, 41]
        label = tile.locator(".sv-label").inner_text()
        assert plane in label and f"{date[:4]}-{date[4:6]}-{date[6:]}" in label and "257/512" in label
        expected = display.to_display(reformat.display_frame(volume, plane, 256))
        assert np.abs(_tile_pixels(page, stack).reshape(41, 512, 4)[..., 0] - expected).max() == 0
        shown, axial = tile.bounding_box(), page.locator(f"{VIEWER} .sv-main").bounding_box()
        # 1 + 2: the live axial tile large on the left, the reformats stacked in a column beside it
        assert shown["x"] >= axial["x"] + axial["width"] and shown["width"] > axial["width"] * 0.4
        assert abs(shown["y"] - (axial["y"] + (stack - 1) * axial["height"] / 2)) < 4
        assert abs(shown["height"] - axial["height"] / 2) < 4
    page.locator(f"{VIEWER} .sv-tile[data-stack='1']").click()
    page.wait_for_function("(root) => root.dataset.layout === 'single' && root.studyViewer.state.stack === 1 && "
                           "root.dataset.status === 'ready'", arg=root.element_handle())
    assert page.locator(f"{VIEWER} .sv-tile:visible").count() == 0
    page.wait_for_timeout(150)
    coronal = display.to_display(reformat.display_frame(volume, "coronal", 256))
    assert np.abs(_greys(page, 1) - coronal).max() <= 1
    page.keyboard.press("3")  # lung window on the enlarged coronal
    page.wait_for_function("(root) => root.dataset.width === '1500'", arg=root.element_handle())
    page.wait_for_timeout(150)
    lung = display.to_display(reformat.display_frame(volume, "coronal", 256), display.CT_PRESETS["lung"])
    assert np.abs(_greys(page, 1) - lung).max() <= 1
    page.keyboard.press("Enter")
    page.wait_for_function("(root) => root.dataset.layout === 'tiles'", arg=root.element_handle())
    assert page.locator(f"{VIEWER} .sv-tile:visible").count() == 2  # axial and sagittal beside the coronal
    page.close()
