"""Frames as binary over the signed-in ``component_server`` route, in Debian chromium on the demo's real DICOM:
who may fetch them (the assigned reader and the coordinator; not a reader without the assignment, nobody signed
out), the values equal to the server's rendering, a CT series loaded a few requests at a time and kept in the
page, the reformats cut from the series decoded once, and bad series: a missing slice (reformat refused with the
reason, axial still scrolls), a slice that cannot be decoded (its own message, the rest scroll), a series larger
than the decoded-frame cache (still scrolls, evicting)."""

import base64

import numpy as np
import pytest

from studyapp import demo
from studyapp.config import Settings
from studyapp.db.models import Assignment, Case
from studyapp.dicom import browser as bodies
from studyapp.dicom import display, reformat, series_cache
from studyapp.dicom.frame_store import FrameStore
from tests.browser import sign_in
from tests.ui.test_viewer_client_browser import NO_WEBGL, VIEWER, _greys, _open_case, _wait_ready, text_off_the_image

CALL_PIXELS = """async (request) => {
  const config = window.gradio_config;
  const component = config.components.find((c) => (c.props.server_fns || []).includes("pixels"));
  const response = await fetch(`${config.root}/gradio_api/component_server/`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ data: request, component_id: component.id, fn_name: "pixels", session_hash: "probe" }) });
  const bytes = new Uint8Array(await response.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 32768) text += String.fromCharCode(...bytes.subarray(i, i + 32768));
  return { status: response.status, type: response.headers.get("content-type"), body: btoa(text) };
}"""


def _batch(page, case_id, stack, slices):
    answer = page.evaluate(CALL_PIXELS, {"case": case_id, "stack": stack, "slices": slices})
    return answer["status"], answer["type"], base64.b64decode(answer["body"])


def _pixels(page, case_id, stack=0, slice_index=0):
    answer = page.evaluate(CALL_PIXELS, {"case": case_id, "stack": stack, "slice": slice_index})
    return answer["status"], answer["type"], base64.b64decode(answer["body"])


def test_binary_frames_follow_the_access_rules_and_equal_the_server_rendering(serve_app, browser, tmp_path):
    page, files, app, reader = _open_case(serve_app, browser, tmp_path, "DEMO-1 (CR)")
    _wait_ready(page)
    with app.sessions() as session:
        own = session.query(Case).filter(Case.case_key == "DEMO-1 (CR)").one().id
        mine = {a.case_id for a in session.query(Assignment).filter(Assignment.reader.has(username=reader))}
        other = next(c.id for c in session.query(Case) if c.id not in mine)
    status, media, body = _pixels(page, own)
    assert status == 200 and media == bodies.MEDIA_TYPE
    header, arrays = bodies.unpack(body)
    path, frame = files[0][0]
    shown = arrays["stored_lut"][arrays["values"]].reshape(header["rows"], header["columns"])
    assert np.array_equal(shown, display.render_file(path, frame))  # the values, not a picture of them

    status, media, body = _pixels(page, other)  # a case of another reader
    assert status == 403 and b"has no assignment for this case" in body and b"values" not in body
    assert _pixels(page, own, 0, 5)[0] == 404  # no such slice
    assert _pixels(page, own, 7, 0)[0] == 404  # no such stack
    page.close()

    signed_out = browser.new_page()  # no session cookie: not even the reader's own case
    signed_out.goto(app.url)
    response = signed_out.request.post(f"{app.url}/gradio_api/component_server/", data={
        "data": {"case": own, "stack": 0, "slice": 0}, "component_id": 0, "fn_name": "pixels",
        "session_hash": "probe"})
    assert response.status == 401 and b"values" not in response.body()
    signed_out.close()

    coordinator = browser.new_page()
    lines = (tmp_path / "demo-credentials.txt").read_text().splitlines()
    passwords = {line.split()[1]: line.split()[2] for line in lines}
    sign_in(coordinator, app.url, "coordinator", passwords["coordinator"])
    for case_id in (own, other):  # coordinators see every case
        status, _, body = _pixels(coordinator, case_id)
        assert status == 200 and bodies.unpack(body)[0]["rows"] > 0
    coordinator.close()


def _ct_copy(tmp_path, settings, drop=None, broken=None):
    """The demo with the CT case's 20 slices copied to ``tmp_path`` (decoded afresh), optionally without the
    slice at ``drop`` (in slice order) and with the one at ``broken`` truncated."""
    def fill(session):
        demo.ensure_demo(session, settings)
        case = session.query(Case).filter(Case.case_key == "DEMO-4 (CT)").one()
        instances = case.series[0].instances
        folder = tmp_path / "ct"
        folder.mkdir()
        for index, instance in enumerate(instances):
            target = folder / f"{index:03d}.dcm"
            data = open(instance.file_path, "rb").read()
            target.write_bytes(data[: len(data) // 3] if index == broken else data)
            instance.file_path = str(target)
        if drop is not None:
            session.delete(instances[drop])
    return fill


def test_a_ct_loads_in_parallel_is_kept_and_its_reformats_come_from_the_series_decoded_once(
        serve_app, browser, tmp_path, monkeypatch):
    stored = []  # every body made, by the request threads or the worker processes, goes to the store once
    real_put = FrameStore.put
    monkeypatch.setattr(FrameStore, "put", lambda store, key, body: stored.append(key) or real_put(store, key, body))
    settings = Settings(data_dir=tmp_path)
    page, files, _, _ = _open_case(serve_app, browser, tmp_path, "DEMO-4 (CT)", _ct_copy(tmp_path, settings),
                                   init_script=NO_WEBGL)
    root = page.locator(VIEWER)
    _wait_ready(page, 11)
    page.wait_for_function("(r) => r.dataset.loaded === '20'", arg=root.element_handle(), timeout=60_000)
    assert page.locator(f"{VIEWER} .sv-progress").is_hidden()  # the loading indicator goes once all are in
    assert 1 < root.evaluate("(r) => r.studyViewer.stats.maxInFlight") <= 4  # a few requests at a time
    for stack in (1, 2):  # coronal and sagittal, cut from the volume of the decoded slices
        page.wait_for_selector(f"{VIEWER} .sv-tile[data-stack='{stack}'][data-status='ready']", timeout=60_000)
    ct = sorted(series_cache.frame_key(path, frame) for path, frame in files[0])
    assert sorted(key for key in stored if key in ct) == ct  # every slice decoded once on the server

    requests = []
    page.on("request", lambda request: requests.append(request.url))
    root.focus()
    for number in range(10, 0, -1):  # up to the first slice: all from the page's own copy
        page.keyboard.press("ArrowUp")
        _wait_ready(page, number)
    page.wait_for_timeout(100)
    assert requests == []
    path, frame = files[0][0]
    assert np.abs(_greys(page, 4) - display.render_file(path, frame)[::4, ::4]).max() <= 1
    assert len(root.evaluate("(r) => r.studyViewer.stats.stepLatencies")) >= 5
    assert text_off_the_image(page) >= 1

    page.locator(f"{VIEWER} .sv-tile[data-stack='2']").click()  # the sagittal enlarged; the series list follows
    page.wait_for_function("(r) => r.studyViewer.state.stack === 2 && r.dataset.status === 'ready'",
                           arg=root.element_handle())
    assert page.locator(f"{VIEWER} .sv-series").input_value() == "2"
    page.wait_for_timeout(150)
    volume = reformat.load_volume(tuple(files[0]))
    assert np.abs(_greys(page, 1) - display.to_display(reformat.display_frame(volume, "sagittal", 256))).max() <= 1
    assert sorted(key for key in stored if key in ct) == ct  # the volume is a copy of the stored slices
    page.close()


def test_a_missing_slice_refuses_the_reformat_and_a_broken_one_has_its_own_message(serve_app, browser, tmp_path):
    settings = Settings(data_dir=tmp_path)
    page, files, app, _ = _open_case(serve_app, browser, tmp_path, "DEMO-4 (CT)",
                                     _ct_copy(tmp_path, settings, drop=5, broken=12), init_script=NO_WEBGL)
    root = page.locator(VIEWER)
    _wait_ready(page, 10)  # the middle of 19
    with app.sessions() as session:
        case_id = session.query(Case).filter(Case.case_key == "DEMO-4 (CT)").one().id
    status, media, body = _batch(page, case_id, 0, [10, 11, 12])  # several slices in one request: each its own
    assert status == 200 and media == bodies.BATCH_MEDIA_TYPE
    answers = bodies.unpack_batch(body)
    assert [code for code, _ in answers] == [200, 422, 200] and b"012.dcm" in answers[1][1]
    assert answers[0][1] == series_cache.frame_body(*files[0][10])
    assert _batch(page, case_id, 0, list(range(9)))[0] == 400  # more than BATCH at once
    assert _batch(page, case_id, 0, [0, 19])[0] == 404  # no such slice
    assert len(files[0]) == 19
    notes = page.locator(f"{VIEWER} .sv-notes").inner_text()
    assert "No coronal or sagittal view" in notes and "slice gaps are unequal" in notes
    assert page.locator(f"{VIEWER} .sv-tile").count() == 1  # the axial series only, no reformat tiles
    root.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # slice 12: the truncated file
    page.wait_for_selector(f'{VIEWER}[data-status="error"][data-slice="12"]', timeout=30_000)
    message = page.locator(f"{VIEWER} .sv-message").inner_text()
    assert message.startswith("Cannot display this image:") and "012.dcm" in message
    page.keyboard.press("ArrowDown")  # the rest still scroll
    _wait_ready(page, 13)
    page.wait_for_timeout(150)
    path, frame = files[0][12]
    assert np.abs(_greys(page, 4) - display.render_file(path, frame)[::4, ::4]).max() <= 1
    assert page.locator(f"{VIEWER} .sv-message").inner_text() == ""
    page.close()


def test_a_series_larger_than_the_cache_still_scrolls(serve_app, browser, tmp_path, monkeypatch):
    limit = 6 * 2**20  # a slice's body holds about 0.5 MB (values and tables)
    for cache in (display.frame_cache, series_cache.bodies, reformat._volumes):
        monkeypatch.setattr(cache, "max_bytes", limit)
    monkeypatch.setenv("STUDYAPP_FRAME_STORE_MB", "6")  # the app's frame store on disk
    settings = Settings(data_dir=tmp_path)
    page, files, _, _ = _open_case(serve_app, browser, tmp_path, "DEMO-4 (CT)", _ct_copy(tmp_path, settings),
                                   init_script=NO_WEBGL)
    root = page.locator(VIEWER)
    _wait_ready(page, 11)
    page.wait_for_function("(r) => r.dataset.loaded === '20'", arg=root.element_handle(), timeout=60_000)
    store = series_cache.store()  # evicted on the server; the page keeps its copy
    assert store.max_bytes == limit and len(store) < 20 and store.total_bytes <= limit
    for stack in (1, 2):
        tile = page.locator(f"{VIEWER} .sv-tile[data-stack='{stack}']")
        page.wait_for_selector(f"{VIEWER} .sv-tile[data-stack='{stack}'][data-status='error']", timeout=60_000)
        assert "larger than the reformat cache" in tile.inner_text()
    root.focus()
    for number in range(12, 21):
        page.keyboard.press("ArrowDown")
        _wait_ready(page, number)
    page.wait_for_timeout(150)
    path, frame = files[0][19]
    assert np.abs(_greys(page, 4) - display.render_file(path, frame)[::4, ::4]).max() <= 1
    page.close()
