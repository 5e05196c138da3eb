"""Headers that lie about the image size (issue 11): variants of the shared DICOM built in a temp folder fail at
import with the reason, the viewer refuses to decode an oversized frame without allocating it, symbolic link loops
are reported as skipped, and the server keeps serving the other cases."""

import os
import shutil
import tracemalloc

import pydicom
import pytest

from studyapp.cli import main
from studyapp.db.models import Assignment, Instance
from studyapp.dicom import display, geometry
from studyapp.services import accounts, design, drafts, ingest, studies
from studyapp.services.reading import case_label
from tests.browser import sign_in


def _variant(source, target, **attributes):
    ds = pydicom.dcmread(source)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(target)
    return target


@pytest.fixture()
def bad_folder(dicom_dir, ct_series_dir, tmp_path):
    """One good CT slice, four lying variants and three unfollowable symbolic links."""
    folder = tmp_path / "export"
    (folder / "series").mkdir(parents=True)
    ct_slice = sorted(ct_series_dir.iterdir())[0]  # JPEG 2000 lossless, 512 x 512
    shutil.copy(ct_slice, folder / "series" / "good.dcm")
    _variant(ct_slice, folder / "huge_j2k.dcm", Rows=65535, Columns=65535)
    _variant(dicom_dir / "edge" / "CT_small.dcm", folder / "rows_halved.dcm", Rows=64)  # native, 128 x 128 data
    _variant(dicom_dir / "edge" / "emri_small_jpeg_2k_lossless.dcm", folder / "frames_12_of_10.dcm", NumberOfFrames=12)
    _variant(dicom_dir / "edge" / "examples_ybr_color.dcm", folder / "frames_29_of_30.dcm", NumberOfFrames=29)
    os.symlink(folder, folder / "series" / "back_to_top")  # a folder link to a folder containing it
    os.symlink("self.dcm", folder / "self.dcm")  # a link to itself
    os.symlink("missing.dcm", folder / "dangling.dcm")
    return folder


def test_lying_headers_fail_and_link_loops_are_skipped(bad_folder, tmp_path, capsys):
    data_dir = tmp_path / "data"
    assert main(["--data-dir", str(data_dir), "create-study", "S"]) == 0
    assert main(["--data-dir", str(data_dir), "import-dicom", "S", str(bad_folder)]) == 1
    out = capsys.readouterr().out
    assert "1 imported, 3 skipped, 4 failed" in out
    reasons = {line.split(": ")[1].rsplit("/", 1)[-1]: line for line in out.splitlines() if line.startswith("  ")
               and ": " in line}
    assert "65535 x 65535 = 4,294,836,225 pixels per frame, above the maximum of 268,435,456" in reasons["huge_j2k.dcm"]
    assert "holds 32768 bytes but" in reasons["rows_halved.dcm"] and "gives 16384" in reasons["rows_halved.dcm"]
    assert "holds 10 fragments but (0028,0008) Number of Frames is 12" in reasons["frames_12_of_10.dcm"]
    assert "30 frames in its offset table but (0028,0008) Number of Frames is 29" in reasons["frames_29_of_30.dcm"]
    assert reasons["back_to_top"].startswith("  skipped:") and "symbolic link loop" in reasons["back_to_top"]
    assert "symbolic link loop" in reasons["self.dcm"] and "broken symbolic link" in reasons["dangling.dcm"]

    # the good file was imported once (not again through the loop), and importing again changes nothing
    assert main(["--data-dir", str(data_dir), "import-dicom", "S", str(bad_folder)]) == 1
    assert "0 imported, 4 skipped, 4 failed; 0 new case(s)" in capsys.readouterr().out


def test_encapsulated_frames_are_counted_without_an_offset_table(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / "cxr" / "RG1_J2KI.dcm")  # one frame in 11 fragments, empty offset table
    assert geometry.pixel_data_problem(ds) is None
    ds.NumberOfFrames = 2  # 11 fragments could hold 2 frames: not provably wrong
    assert geometry.pixel_data_problem(ds) is None
    ds.NumberOfFrames = 12
    assert "holds 11 fragments" in geometry.pixel_data_problem(ds)


def test_every_shared_image_passes_the_geometry_check(dicom_dir):
    checked = 0
    for path in sorted(p for p in dicom_dir.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path)
        if "PixelData" in ds:
            assert geometry.pixel_data_problem(ds) is None, path
            checked += 1
    assert checked >= 30


def test_renderer_refuses_an_oversized_frame_without_allocating(ct_series_dir, tmp_path):
    huge = _variant(sorted(ct_series_dir.iterdir())[0], tmp_path / "huge.dcm", Rows=65535, Columns=65535)
    tracemalloc.start()
    try:
        with pytest.raises(display.FrameTooLargeError, match=r"huge\.dcm.*65535 x 65535.*viewer does not decode"):
            display.render_file(huge, max_side=1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024  # the 8 GiB array was never asked for


def test_server_shows_a_message_and_keeps_serving_other_cases(serve_app, browser, shared_data, tmp_path):
    folder = tmp_path / "cxr"
    shutil.copytree(shared_data / "dicom" / "cxr", folder)
    state = {}

    def fill(session):
        study = studies.create_study(session, "S", template_text="Normal chest.")
        assert ingest.import_folder(session, study, folder).counts["failed"] == 0
        drafts_csv = tmp_path / "drafts.csv"
        drafts_csv.write_text("case_key,arm,text,source\n" + "".join(
            f"{case.case_key},{arm},Draft for {case.case_key}.,test\n" for case in study.cases for arm in ("llm", "model")))
        assert drafts.import_drafts(session, study, drafts_csv).errors == []
        drafts.set_template(session, study, study.template_text)
        for name in ("reader1", "reader2", "reader3"):
            accounts.enroll_reader(session, study, accounts.add_user(session, name, f"{name}-password"))
        design.generate_assignments(session, study, seed=7, cases_per_reader=3)
        first, second = (session.query(Assignment).join(Assignment.reader)
                         .filter_by(username="reader1").order_by(Assignment.position)[:2])
        # the file of reader1's first case is replaced after import by one whose header claims 65535 x 65535
        instance = session.query(Instance).filter(Instance.series_id == first.case.series[0].id).first()
        _variant(instance.file_path, instance.file_path, Rows=65535, Columns=65535)
        # readers see neutral labels ("Case 01 · CR"), not case keys
        state.update(huge=case_label(first.position, first.case), good=case_label(second.position, second.case))

    app = serve_app(fill)
    page = browser.new_page()
    sign_in(page, app.url, "reader1", "reader1-password")
    page.locator("#worklist label", has_text=state["huge"]).first.click()
    page.wait_for_selector('.sv-root:visible[data-status="error"]', timeout=30_000)  # the browser viewer
    assert "pixels per frame" in page.locator(".sv-root:visible .sv-message").inner_text()
    page.get_by_text("Server-rendered view (fallback and reference)").click()
    page.wait_for_selector("#viewer-message >> text=Cannot display this image", timeout=30_000)
    assert "pixels per frame" in page.locator("#viewer-message").inner_text()
    assert page.locator("#viewer-image img").count() == 0
    page.locator("#worklist label", has_text=state["good"]).first.click()
    page.wait_for_selector("#viewer-image img", timeout=30_000)
    assert page.locator("#viewer-message").inner_text().strip() == ""
    page.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)

    other = browser.new_page()  # another reader is served meanwhile
    sign_in(other, app.url, "reader2", "reader2-password")
    other.locator("#worklist label").first.click()
    other.wait_for_selector('.sv-root:visible[data-status="ready"]', timeout=30_000)
    page.close()
    other.close()
