"""Folder import into the database: report, rows, idempotence, transaction left to the caller."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from studyapp.db.models import Case, Instance, ReaderStudy, Series
from studyapp.services.ingest import FAILED, IMPORTED, SKIPPED, import_folder


@pytest.fixture()
def mixed_folder(dicom_dir, ct_series_dir, tmp_path):
    """Two chest radiographs, three CT slices in a subfolder, a text file, and two truncated DICOM files."""
    folder = tmp_path / "incoming"
    (folder / "ct" / "deeper").mkdir(parents=True)
    shutil.copy(dicom_dir / "cxr" / "RG1_J2KI.dcm", folder / "rg1.dcm")
    shutil.copy(dicom_dir / "cxr" / "nih_siim_cr_jpegbaseline.dcm", folder / "nih.dcm")
    for index, source in enumerate(sorted(ct_series_dir.iterdir())[:3]):
        shutil.copy(source, folder / "ct" / ("deeper" if index else "") / f"slice{index}")
    (folder / "README.txt").write_text("scanned requisition, not an image\n")
    for name, source in [("cut_native.dcm", dicom_dir / "edge" / "CT_small.dcm"),
                         ("cut_jpeg.dcm", dicom_dir / "edge" / "SC_rgb_jpeg_dcmtk.dcm")]:  # fmt: skip
        data = source.read_bytes()
        (folder / name).write_bytes(data[: len(data) * 2 // 3])
    return folder


def _counts(session):
    return tuple(session.scalar(select(func.count()).select_from(model)) for model in (Case, Series, Instance))


def _new_study(session, name="pilot"):
    study = ReaderStudy(name=name)
    session.add(study)
    session.flush()
    return study


def test_import_report_and_rows(db, mixed_folder):
    with db.begin() as session:
        report = import_folder(session, _new_study(session), mixed_folder)
        assert report.counts == {IMPORTED: 5, SKIPPED: 1, FAILED: 2}
        assert (report.cases_created, report.series_created) == (3, 3)
        by_name = {outcome.path.rsplit("/", 1)[-1]: outcome for outcome in report.files}
        assert len(by_name) == 8
        assert by_name["README.txt"].status == SKIPPED and "not a DICOM file" in by_name["README.txt"].reason
        assert by_name["cut_native.dcm"].status == FAILED
        assert "truncated (7FE0,0010) Pixel Data" in by_name["cut_native.dcm"].reason
        assert by_name["cut_jpeg.dcm"].status == FAILED and "truncated DICOM file" in by_name["cut_jpeg.dcm"].reason
        assert by_name["slice1"].status == IMPORTED and "Study Instance UID: derived" in by_name["slice1"].reason
        assert "2 failed" in report.summary() and "README.txt: not a DICOM file" in report.summary()
    with db() as session:
        assert _counts(session) == (3, 3, 5)
        rg1 = session.scalar(select(Instance).where(Instance.file_path == str(mixed_folder / "rg1.dcm")))
        assert (rg1.rows, rg1.columns, rg1.view_position, rg1.photometric_interpretation) == (
            1955, 1841, "PA", "MONOCHROME1",
        )  # fmt: skip
        case = rg1.series.case
        assert (case.case_key, case.patient_age, case.patient_sex, case.study_date) == (
            "exam Number", "64Y", "F", "20040826",
        )  # fmt: skip
        nih_case = session.scalar(select(Case).where(Case.patient_age == "62Y"))
        assert nih_case.case_key == nih_case.study_instance_uid  # no AccessionNumber
        ct = session.scalar(select(Series).where(Series.modality == "CT"))
        assert [i.sort_key for i in ct.instances] == [-770.5, -768.5, -766.5]


def test_importing_twice_creates_no_duplicates(db, mixed_folder):
    with db.begin() as session:
        study = _new_study(session)
        import_folder(session, study, mixed_folder)
    with db.begin() as session:
        study = session.get(ReaderStudy, study.id)
        again = import_folder(session, study, mixed_folder)
        assert again.counts == {IMPORTED: 0, SKIPPED: 6, FAILED: 2}
        assert {o.reason for o in again.with_status(SKIPPED) if o.path.endswith((".dcm", "slice0"))} == {
            "already imported"
        }
        assert (again.cases_created, again.series_created) == (0, 0) and len(again.case_ids) == 3
    with db() as session:
        assert _counts(session) == (3, 3, 5)


def test_same_instance_from_another_path_is_skipped_and_other_studies_are_separate(db, dicom_dir, tmp_path):
    folder = tmp_path / "incoming"
    (folder / "copy").mkdir(parents=True)
    shutil.copy(dicom_dir / "cxr" / "highdicom_dx_image_dog.dcm", folder / "dog.dcm")
    shutil.copy(dicom_dir / "cxr" / "highdicom_dx_image_dog.dcm", folder / "copy" / "dog.dcm")
    with db.begin() as session:
        first = import_folder(session, _new_study(session, "one"), folder)
        assert first.counts == {IMPORTED: 1, SKIPPED: 1, FAILED: 0}
        [skipped] = first.with_status(SKIPPED)
        assert skipped.reason.startswith("same SOP Instance UID as ")
        second = import_folder(session, _new_study(session, "two"), folder)  # another reader study
        assert second.counts[IMPORTED] == 1
    with db() as session:
        assert _counts(session) == (2, 2, 2)


def test_caller_owns_the_transaction(db, mixed_folder):
    with db() as session:
        import_folder(session, _new_study(session), mixed_folder)
        session.rollback()
    with db() as session:
        assert _counts(session) == (0, 0, 0)


def test_bad_arguments(db, tmp_path):
    with db() as session:
        with pytest.raises(ValueError, match="must be saved"):
            import_folder(session, ReaderStudy(name="unsaved"), tmp_path)
        with pytest.raises(NotADirectoryError):
            import_folder(session, _new_study(session), tmp_path / "missing")


def test_shipped_demo_dicom_is_unmodified_and_imports_cleanly(db, dicom_dir):
    assets = Path(__file__).resolve().parents[2] / "assets" / "dicom"
    shipped = sorted(p for p in assets.rglob("*") if p.is_file() and p.parent != assets)
    assert len(shipped) == 23
    for path in shipped:
        assert path.read_bytes() == (dicom_dir / path.parent.name / path.name).read_bytes(), path
    with db.begin() as session:
        report = import_folder(session, _new_study(session), assets)
    assert report.counts == {IMPORTED: 23, SKIPPED: 2, FAILED: 0}  # SOURCES.md and the licence text are skipped
    assert report.cases_created == 4
