"""Window/level on the canvas-2D renderer in Debian chromium, on the demo's 1955 x 1841 CR shown smaller than
1:1: the image is painted at its size on screen, equal to the server's rendering for the dragged window scaled to
that size, and a drag step writes nothing else: the overlay canvas is not redrawn and the page's text and
attributes change only where the window is shown (an unchanged write would make the browser lay out the page
again on every step)."""

import numpy as np
from PIL import Image

from studyapp.dicom import display
from tests.ui.test_viewer_client_browser import NO_WEBGL, VIEWER, _open_case, _wait_ready

WATCH = """(root) => {
  window.watched = [];
  const name = (node) => (node.nodeType === Node.TEXT_NODE ? node.parentElement : node).className;
  new MutationObserver((records) => records.forEach((r) => window.watched.push(
    r.type === "attributes" ? `${name(r.target)}@${r.attributeName}` : `${name(r.target)}:text`))).observe(root,
    { subtree: true, childList: true, characterData: true, attributes: true });
  const overlay = root.querySelector(".sv-overlay");
  const clear = CanvasRenderingContext2D.prototype.clearRect;
  window.overlayClears = 0;
  CanvasRenderingContext2D.prototype.clearRect = function (...args) {
    if (this.canvas === overlay) window.overlayClears += 1;
    return clear.apply(this, args);
  };
}"""

ON_SCREEN = """(root) => {
  const { s, ox, oy } = root.studyViewer.transform();
  const frame = root.studyViewer.state.frame;
  const canvas = root.querySelector(".sv-canvas");
  const width = Math.round(frame.columns * s), height = Math.round(frame.rows * s);
  const data = canvas.getContext("2d").getImageData(Math.round(ox), Math.round(oy), width, height).data;
  const grey = [];
  for (let p = 0; p < data.length; p += 4) grey.push(data[p]);
  return { width, height, s, grey };
}"""


def test_a_window_drag_paints_at_screen_size_and_writes_nothing_else(serve_app, browser, tmp_path):
    page, files, _, _ = _open_case(serve_app, browser, tmp_path, "DEMO-2 (CR)", init_script=NO_WEBGL)
    _wait_ready(page)
    root = page.locator(VIEWER)
    assert root.get_attribute("data-renderer") == "canvas 2D"
    root.evaluate(WATCH)
    box = page.locator(f"{VIEWER} canvas.sv-overlay").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 150, y + 40, steps=5)
    page.mouse.up()
    page.wait_for_function("(root) => root.dataset.width !== '30000'", arg=root.element_handle())
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")  # painted at the next animation frame
    changed = set(page.evaluate("window.watched"))
    assert changed <= {"sv-info:text", "sv-root@data-center", "sv-root@data-width"}, changed
    assert "sv-info:text" in changed and page.evaluate("window.overlayClears") == 0

    center, width = float(root.get_attribute("data-center")), float(root.get_attribute("data-width"))
    shown = root.evaluate(ON_SCREEN)
    assert shown["s"] < 0.6  # the radiograph is shown well below 1:1
    canvas = np.array(shown["grey"], dtype=np.float64).reshape(shown["height"], shown["width"])
    path, frame = files[0][0]
    server = Image.fromarray(display.render_file(path, frame, window=(center, width)))
    expected = np.asarray(server.resize((shown["width"], shown["height"]), Image.Resampling.BOX), dtype=np.float64)
    difference = np.abs(canvas - expected)
    assert difference.mean() < 2 and np.percentile(difference, 99) < 16, (difference.mean(), np.percentile(difference, 99))
    page.close()
