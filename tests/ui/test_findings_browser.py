"""Model findings on the image in Debian chromium: a box imported for a case is drawn at its pixel coordinates and
clicking its sentence highlights it; a CT mask is shown on its slice; a mask on the wrong grid gives a message;
a reader of another arm receives no findings (raw response bytes checked)."""

import json

import numpy as np

from studyapp import demo
from studyapp.config import Settings
from studyapp.db.models import Assignment, Case, User
from studyapp.services import drafts, findings, studies
from studyapp.services.reading import case_label
from tests.browser import sign_in

VIEWER = ".sv-root:visible"
BOX = "Opacity in the right lower zone."
OFF_GRID = "Small left effusion."
CT_MASK = "Hypodense lesion in the liver."
GREEN, RED = (0x22, 0xC5, 0x5E), (0xF4, 0x3F, 0x5E)


def _fill(tmp_path):
    settings = Settings(data_dir=tmp_path)

    def fill(session):
        demo.ensure_demo(session, settings)
        study = studies.get_study(session, demo.DEMO_STUDY)
        studies.show_findings(session, study, "model")
        cr = session.query(Case).filter(Case.case_key == "DEMO-2 (CR)").one()
        ct = session.query(Case).filter(Case.case_key == "DEMO-4 (CT)").one()
        cr_uid = cr.series[0].instances[0].sop_instance_uid
        ct_uid = ct.series[0].instances[13].sop_instance_uid  # the 14th slice
        square = np.zeros((512, 512), bool)
        square[200:300, 150:250] = True
        lines = [
            {"case_key": cr.case_key, "arm": "model", "source": "MedVersa test",
             "text": f"FINDINGS: {BOX} {OFF_GRID} IMPRESSION: Pneumonia.",
             "findings": [{"type": "box", "sentence": BOX, "sop_instance_uid": cr_uid, "xyxy": [0.2, 0.55, 0.45, 0.8]},
                          {"type": "mask", "sentence": OFF_GRID, "rows": 100, "columns": 100,
                           "slices": [{"sop_instance_uid": cr_uid, "frame": 0, "rle": [5000, 100, 4900]}]}]},
            {"case_key": ct.case_key, "arm": "model", "source": "MedVersa test",
             "text": f"FINDINGS: {CT_MASK} IMPRESSION: Liver lesion.",
             "findings": [{"type": "mask", "sentence": CT_MASK, "rows": 512, "columns": 512,
                           "slices": [{"sop_instance_uid": ct_uid, "frame": 0, "rle": findings.encode_rle(square)}]}]},
        ]
        path = tmp_path / "drafts.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        result = drafts.import_drafts(session, study, path, replace=True)
        assert result.errors == [] and result.replaced == 2

    return fill


def _passwords(tmp_path):
    return {line.split()[1]: line.split()[2] for line in (tmp_path / "demo-credentials.txt").read_text().splitlines()}


def _open(page, app, reader, case_key):
    """Click the reader's (neutral) worklist label of ``case_key``."""
    with app.sessions() as session:
        assignment = (session.query(Assignment).join(Case).join(User, Assignment.reader_id == User.id)
                      .filter(Case.case_key == case_key, User.username == reader).one())
        label = case_label(assignment.position, assignment.case)
    page.locator("#worklist label", has_text=label).click()


def _canvas_point(page, x, y):
    """Overlay-canvas pixel of image point (x, y)."""
    t = page.locator(VIEWER).evaluate("(r) => r.studyViewer.transform()")
    return x * t["s"] + t["ox"], y * t["s"] + t["oy"]


def _overlay(page, x, y):
    return tuple(page.locator(VIEWER).evaluate(f"(r) => r.studyViewer.overlayPixel({x}, {y})"))


def test_box_at_its_pixels_highlight_and_off_grid_message(serve_app, browser, tmp_path):
    app = serve_app(_fill(tmp_path))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in(page, app.url, "reader2", _passwords(tmp_path)["reader2"])  # reads DEMO-2 under the model arm
    _open(page, app, "reader2", "DEMO-2 (CR)")
    page.wait_for_selector(f'{VIEWER}[data-status="ready"]', timeout=30_000)
    sentences = page.locator(f"{VIEWER} .sv-finding")
    assert sentences.all_inner_texts() == [BOX, OFF_GRID]
    page.wait_for_timeout(100)
    columns, rows = 1841, 1955
    left = _canvas_point(page, 0.2 * columns, (0.55 + 0.8) / 2 * rows)  # middle of the box's left edge
    inside = _canvas_point(page, 0.3 * columns, 0.7 * rows)
    assert _overlay(page, *left)[:3] == GREEN and _overlay(page, *left)[3] == 255
    assert _overlay(page, *inside)[3] == 0  # boxes are outlines
    notice = page.locator(f"{VIEWER} .sv-notice").inner_text()
    assert notice == ("Finding 2: its mask grid (100 x 100) does not match the image (1841 x 1955); not drawn.")

    sentences.first.click()
    page.wait_for_selector(f'{VIEWER}[data-highlight="0"]')
    page.wait_for_timeout(100)
    assert _overlay(page, *left)[:3] == RED

    page.keyboard.press("f")  # findings off: nothing over the image
    page.wait_for_timeout(100)
    assert _overlay(page, *left)[3] == 0
    assert page.locator("#report-editor textarea").is_editable()
    page.close()


def test_ct_mask_on_its_slice(serve_app, browser, tmp_path):
    app = serve_app(_fill(tmp_path))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in(page, app.url, "reader1", _passwords(tmp_path)["reader1"])  # reads DEMO-4 under the model arm
    _open(page, app, "reader1", "DEMO-4 (CT)")
    page.wait_for_selector(f'{VIEWER}[data-status="ready"][data-slice="11"]', timeout=30_000)
    centre = _canvas_point(page, 200, 250)
    assert _overlay(page, *centre)[3] == 0  # the mask is on slice 14
    page.locator(f"{VIEWER} .sv-finding", has_text=CT_MASK).click()
    page.wait_for_selector(f'{VIEWER}[data-status="ready"][data-slice="14"][data-highlight="0"]', timeout=30_000)
    page.wait_for_timeout(100)
    red, green, blue, alpha = _overlay(page, *centre)
    assert alpha > 100 and red > green and red > blue
    outside = _canvas_point(page, 100, 100)
    assert _overlay(page, *outside)[3] == 0
    page.close()


def test_readers_of_other_arms_receive_no_findings(serve_app, browser, tmp_path):
    app = serve_app(_fill(tmp_path))
    passwords = _passwords(tmp_path)
    for reader, arm_shows in (("reader3", False), ("reader2", True)):  # DEMO-2 under llm, then under model
        mark = app.sent.mark()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, app.url, reader, passwords[reader])
        _open(page, app, reader, "DEMO-2 (CR)")
        page.wait_for_selector(f'{VIEWER}[data-status="ready"]', timeout=30_000)
        page.wait_for_timeout(300)
        sent = app.sent.text_since(mark)
        for secret in (BOX, OFF_GRID, '\\"sentence\\"'):  # the sentences, and any finding (JSON in JSON)
            assert (secret in sent) == arm_shows, (reader, secret)
        assert CT_MASK not in sent  # nor those of a case the reader does not read
        assert page.locator(f"{VIEWER} .sv-finding").count() == (2 if arm_shows else 0)
        page.close()
