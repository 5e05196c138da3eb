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


def _window(page):
    root = page.locator(VIEWER)
    return float(root.get_attribute("data-center")), float(root.get_attribute("data-width"))


@pytest.mark.parametrize("renderer, init_script", [("canvas 2D", None), ("WebGL2", FORCE_WEBGL)])
def test_drag_changes_the_window_by_the_expected_amount_and_matches_the_server(serve_app, browser, tmp_path,
                                                                               renderer, init_script):
    page, files, _, _ = _open_case(serve_app, browser, tmp_path, "DEMO-2 (CR)", init_script=init_script)
    _wait_ready(page)  # RG1_J2KI: 1955 x 1841, MONOCHROME1
    assert page.locator(VIEWER).get_attribute("data-renderer") == renderer
    info = page.locator(f"{VIEWER} .sv-info")
    if "WebGL2 not used" in info.inner_text():  # headless chromium without a GPU: said briefly, no ANGLE string
        assert "WebGL2 not used: only a software rasteriser; drawing with canvas 2D" in info.inner_text()
        assert "ANGLE" not in info.inner_text()
    # the window and zoom read on a white MONOCHROME1 radiograph: light text on a dark box
    assert info.evaluate("(el) => getComputedStyle(el).backgroundColor") == "rgba(0, 0, 0, 0.65)"
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
    assert "no WebGL2 in this browser; drawing with canvas 2D" in page.locator(f"{VIEWER} .sv-info").inner_text()
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


CALL_FRAME = """async (request) => {
  const component = window.gradio_config.components.find((c) => (c.props.server_fns || []).includes("frame"));
  const response = await fetch(`${window.gradio_config.root}/gradio_api/component_server/`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ data: request, component_id: component.id, fn_name: "frame", session_hash: "probe" }) });
  return await response.json();
}"""


def test_frames_of_a_case_without_assignment_are_refused(serve_app, browser, tmp_path):
    page, _, app, reader = _open_case(serve_app, browser, tmp_path, "DEMO-1 (CR)")
    _wait_ready(page)
    with app.sessions() as session:
        own = {a.case_id for a in session.query(Assignment).filter(Assignment.reader.has(username=reader))}
        other = next(c.id for c in session.query(Case) if c.id not in own)
    shown = page.evaluate(CALL_FRAME, {"case": min(own), "stack": 0, "slice": 0})
    assert shown["rows"] > 0 and "values" in shown
    refused = page.evaluate(CALL_FRAME, {"case": other, "stack": 0, "slice": 0})
    assert refused == {"error": f"Cannot display this image: {reader!r} has no assignment for this case"}
    signed_out = browser.new_page()  # no session cookie: not even the reader's own case
    signed_out.goto(app.url)
    response = signed_out.request.post(f"{app.url}/gradio_api/component_server/", data={
        "data": {"case": min(own), "stack": 0, "slice": 0}, "component_id": 0, "fn_name": "frame",
        "session_hash": "probe"})
    assert response.status == 401
    signed_out.close()
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
        return next(line for line in page.locator(f"{VIEWER} .sv-info").inner_text().splitlines()
                    if line.startswith("Ruler"))

    # the pointer lands on whole screen pixels: each end is within one screen pixel (< 1.5 image pixels here)
    # nih_siim_cr_jpegbaseline.dcm: Pixel Spacing 0.168 mm; 300 x 400 pixels apart = 500 pixels = 84.0 mm
    value, unit = measure("DEMO-1 (CR)", (100, 100), (400, 500)).split(" ", 2)[1:]
    assert float(value) == pytest.approx(84.0, abs=3 * 0.168) and unit == "mm (Pixel Spacing)"
    # RG1_J2KI.dcm: Pixel Spacing 0\\0, no Imager Pixel Spacing: pixels, and said so
    value, unit = measure("DEMO-2 (CR)", (100, 100), (400, 500)).split(" ", 2)[1:]
    assert float(value) == pytest.approx(500, abs=3 * 2.6) and unit == "px (uncalibrated: no pixel spacing)"
    page.close()
