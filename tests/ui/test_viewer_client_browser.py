"""The browser viewer on the demo's real DICOM in Debian chromium: a window/level drag moves the window by the
documented amount and the canvas equals the server's rendering for that window; the wheel and the arrow keys move
through the 20-slice CT; presets, inversion; the ruler in mm from Pixel Spacing, or in pixels said uncalibrated;
an undecodable frame gives a message."""

import numpy as np
import pytest

from studyapp import demo
from studyapp.config import Settings
from studyapp.db.models import Assignment, Case, User
from studyapp.dicom import display
from studyapp.services.reading import case_label
from tests.browser import sign_in, worklist_label

VIEWER = ".sv-root:visible"


FORCE_WEBGL = "window.studyViewerForceWebGL = true;"  # WebGL2 also on chromium's software rasteriser
NO_WEBGL = """const original = HTMLCanvasElement.prototype.getContext;
HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
  return kind === "webgl2" ? null : original.call(this, kind, ...rest); };"""


def _open_case(serve_app, browser, tmp_path, case_key: str, fill=None, init_script=None):
    settings = Settings(data_dir=tmp_path)
    app = serve_app(fill or (lambda session: demo.ensure_demo(session, settings)))
    passwords = {line.split()[1]: line.split()[2] for line in (tmp_path / "demo-credentials.txt").read_text().splitlines()}
    with app.sessions() as session:
        assignment = session.query(Assignment).join(Case).filter(Case.case_key == case_key).order_by(Assignment.id).first()
        reader, label = worklist_label(session, case_key)
        files = [[(i.file_path, f) for i in s.instances for f in range(i.number_of_frames or 1)]
                 for s in assignment.case.series]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    if init_script:
        page.add_init_script(init_script)
    sign_in(page, app.url, reader, passwords[reader])
    page.locator("#worklist label", has_text=label).click()
    return page, files, app, reader


def _wait_ready(page, slice_number=None):
    selector = f'{VIEWER}[data-status="ready"]' + (f'[data-slice="{slice_number}"]' if slice_number else "")
    page.wait_for_selector(selector, timeout=30_000)


def _greys(page, step):
    data = page.locator(VIEWER).evaluate(f"(root) => root.studyViewer.greys({step})")
    return np.array(data["values"], dtype=np.int16).reshape(-1, len(range(0, data["width"], step)))


def text_off_the_image(page, viewer=VIEWER):
    """Asserts that the corner text of the live viewport (slice, window, zoom; series label) lies outside the
    fitted image: never over its top or bottom band."""
    t = page.locator(viewer).evaluate("(r) => ({...r.studyViewer.transform(), columns: r.studyViewer.state.frame.columns,"
                                      " rows: r.studyViewer.state.frame.rows, dpr: devicePixelRatio})")
    box = page.locator(f"{viewer} .sv-main canvas.sv-overlay").bounding_box()
    top, left = box["y"] + t["oy"] / t["dpr"], box["x"] + t["ox"] / t["dpr"]
    bottom, right = top + t["rows"] * t["s"] / t["dpr"], left + t["columns"] * t["s"] / t["dpr"]
    checked = 0
    for selector in (".sv-main .sv-info", ".sv-main .sv-label"):
        text = page.locator(f"{viewer} {selector}")
        if not text.is_visible():
            continue
        b = text.bounding_box()
        overlaps = b["x"] < right and b["x"] + b["width"] > left and b["y"] < bottom and b["y"] + b["height"] > top
        assert not overlaps, f"{selector} {b} lies over the image ({left:.0f}, {top:.0f}) - ({right:.0f}, {bottom:.0f})"
        checked += 1
    return checked


def _window(page):
    root = page.locator(VIEWER)
    return float(root.get_attribute("data-center")), float(root.get_attribute("data-width"))


@pytest.mark.parametrize("renderer, init_script", [("canvas 2D", None), ("WebGL2", FORCE_WEBGL)])
def test_drag_changes_the_window_by_the_expected_amount_and_matches_the_server(serve_app, browser, tmp_path,
                                                                               renderer, init_script):
    page, files, _, _ = _open_case(serve_app, browser, tmp_path, "DEMO-2 (CR)", init_script=init_script)
    _wait_ready(page)  # RG1_J2KI: 1955 x 1841, MONOCHROME1
    assert page.locator(VIEWER).get_attribute("data-renderer") == renderer
    status = page.locator(f"{VIEWER} .sv-status")
    if "WebGL2 not used" in status.inner_text():  # headless chromium without a GPU: said briefly, no ANGLE string,
        assert "WebGL2 not used: only a software rasteriser; drawing with canvas 2D" in status.inner_text()
        assert "ANGLE" not in status.inner_text()  # in the status line below the image, not on it
    info = page.locator(f"{VIEWER} .sv-info")
    assert "WebGL2" not in info.inner_text() and "C 15000 W 30000" in info.inner_text()
    # the window and zoom on a white MONOCHROME1 radiograph: small light text with a thin shadow, off the image
    assert info.evaluate("(el) => getComputedStyle(el).fontSize") == "11px"
    assert "rgb(0, 0, 0)" in info.evaluate("(el) => getComputedStyle(el).textShadow")
    assert text_off_the_image(page) == 1
    path, frame = files[0][0]
    assert _window(page) == (15000.0, 30000.0)  # the file's Window Center/Width
    stored = _greys(page, 9)
    server = display.render_file(path, frame)[::9, ::9].astype(np.int16)
    assert stored.shape == server.shape and np.abs(stored - server).max() <= 1

    per_pixel = page.locator(VIEWER).evaluate("(root) => root.studyViewer.state.frame.wl_per_pixel")
    box = page.locator(f"{VIEWER} canvas.sv-overlay").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 150, y + 40, steps=5)  # narrower and higher
    page.mouse.up()
    page.wait_for_function("(root) => root.dataset.width !== '30000'", arg=page.locator(VIEWER).element_handle())
    center, width = _window(page)
    assert center == pytest.approx(15000 + 40 * per_pixel) and width == pytest.approx(30000 - 150 * per_pixel)
    page.wait_for_timeout(100)  # the frame is painted at the next animation frame
    dragged = _greys(page, 9)
    server = display.render_file(path, frame, window=(center, width))[::9, ::9].astype(np.int16)
    assert np.abs(dragged - server).max() <= 1 and np.abs(dragged - stored).mean() > 5
    page.close()


def test_wheel_and_arrows_move_through_the_ct_and_presets_apply(serve_app, browser, tmp_path):
    page, files, app, _ = _open_case(serve_app, browser, tmp_path, "DEMO-4 (CT)", init_script=NO_WEBGL)
    with app.sessions() as session:
        _, label = worklist_label(session, "DEMO-4 (CT)")
    _wait_ready(page, 11)  # the middle of 20 slices
    assert page.locator(VIEWER).get_attribute("data-renderer") == "canvas 2D"
    assert "no WebGL2 in this browser; drawing with canvas 2D" in page.locator(f"{VIEWER} .sv-status").inner_text()
    stack = files[0]
    assert len(stack) == 20
    box = page.locator(f"{VIEWER} canvas.sv-overlay").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(3):
        page.mouse.wheel(0, 100)
        page.wait_for_timeout(50)
    _wait_ready(page, 14)
    page.wait_for_timeout(100)
    path, frame = stack[13]
    assert np.abs(_greys(page, 4) - display.render_file(path, frame)[::4, ::4]).max() <= 1
    page.keyboard.press("ArrowUp")
    _wait_ready(page, 13)
    page.keyboard.press("3")  # presets: 1 as stored, 2 wide, 3 lung
    page.wait_for_function("(root) => root.dataset.width === '1500'", arg=page.locator(VIEWER).element_handle())
    page.wait_for_timeout(100)
    path, frame = stack[12]
    lung = display.render_file(path, frame, window=display.CT_PRESETS["lung"])[::4, ::4]
    assert np.abs(_greys(page, 4) - lung).max() <= 1
    page.keyboard.press("i")
    page.wait_for_timeout(150)
    assert np.abs(_greys(page, 4) - (255 - lung.astype(np.int16))).max() <= 1

    page.locator("#worklist label").filter(has_not_text=label).first.click()  # away and back: as left
    page.wait_for_function("(root) => root.dataset.slice !== '13'", arg=page.locator(VIEWER).element_handle())
    page.locator("#worklist label", has_text=label).click()
    _wait_ready(page, 13)
    page.wait_for_timeout(150)
    assert _window(page) == (-600.0, 1500.0)
    assert np.abs(_greys(page, 4) - (255 - lung.astype(np.int16))).max() <= 1
    page.close()


def test_undecodable_frame_gives_a_message_and_the_screen_keeps_working(serve_app, browser, tmp_path, shared_data):
    settings = Settings(data_dir=tmp_path)
    broken = tmp_path / "broken.dcm"  # a truncated copy of the CR the case points to
    data = (shared_data / "dicom" / "cxr" / "RG1_J2KI.dcm").read_bytes()
    broken.write_bytes(data[: len(data) // 3])

    def fill(session):
        demo.ensure_demo(session, settings)
        case = session.query(Case).filter(Case.case_key == "DEMO-2 (CR)").one()
        case.series[0].instances[0].file_path = str(broken)

    page, _, _, _ = _open_case(serve_app, browser, tmp_path, "DEMO-2 (CR)", fill)
    page.wait_for_selector(f'{VIEWER}[data-status="error"]', timeout=30_000)
    message = page.locator(f"{VIEWER} .sv-message").inner_text()
    assert message.startswith("Cannot display this image:") and "broken.dcm" in message
    assert "server-rendered view" in message
    editor = page.locator("#report-editor textarea")
    editor.fill("Typed while the image is broken.")
    assert editor.input_value() == "Typed while the image is broken." and editor.is_editable()
    page.close()


def test_ruler_measures_mm_from_pixel_spacing_and_says_when_uncalibrated(serve_app, browser, tmp_path):
    settings = Settings(data_dir=tmp_path)
    app = serve_app(lambda session: demo.ensure_demo(session, settings))
    passwords = {line.split()[1]: line.split()[2] for line in (tmp_path / "demo-credentials.txt").read_text().splitlines()}
    with app.sessions() as session:  # reader2 reads both chest CRs
        labels = {a.case.case_key: case_label(a.position, a.case)
                  for a in session.query(Assignment).join(User, Assignment.reader_id == User.id)
                  .filter(User.username == "reader2")}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in(page, app.url, "reader2", passwords["reader2"])

    def measure(case_key, start, end):
        page.locator("#worklist label", has_text=labels[case_key]).click()
        page.wait_for_function("(label) => document.querySelector('#worklist input:checked')?.closest('label')"
                               "?.innerText.includes(label)", arg=labels[case_key])
        _wait_ready(page)
        page.locator(VIEWER).evaluate("(r) => r.studyViewer.state.frame")  # the frame is on screen
        t = page.locator(VIEWER).evaluate("(r) => r.studyViewer.transform()")
        box = page.locator(f"{VIEWER} canvas.sv-overlay").bounding_box()
        point = lambda x, y: (box["x"] + x * t["s"] + t["ox"], box["y"] + y * t["s"] + t["oy"])  # noqa: E731
        page.locator(VIEWER).focus()
        page.keyboard.press("m")
        page.mouse.move(*point(*start))
        page.mouse.down()
        page.mouse.move(*point(*end), steps=4)
        page.mouse.up()
        page.wait_for_timeout(100)
        page.keyboard.press("m")  # back to window/level
        return page.locator(f"{VIEWER} .sv-measure").inner_text()

    # the pointer lands on whole screen pixels: each end is within one screen pixel (< 1.5 image pixels here)
    # nih_siim_cr_jpegbaseline.dcm: Pixel Spacing 0.168 mm; 300 x 400 pixels apart = 500 pixels = 84.0 mm
    value, unit = measure("DEMO-1 (CR)", (100, 100), (400, 500)).split(" ", 2)[1:]
    assert float(value) == pytest.approx(84.0, abs=3 * 0.168) and unit == "mm (Pixel Spacing)"
    # RG1_J2KI.dcm: Pixel Spacing 0\\0, no Imager Pixel Spacing: pixels, and said so
    value, unit = measure("DEMO-2 (CR)", (100, 100), (400, 500)).split(" ", 2)[1:]
    assert float(value) == pytest.approx(500, abs=3 * 2.6) and unit == "px (uncalibrated: no pixel spacing)"
    page.close()
