"""Bad input for the PACS import and the SR export, against the real Orthanc: an unreachable PACS, wrong
credentials, a QIDO answer without UIDs, a frame that does not decode, a report that cannot be exported. Each gives
a message naming the study; nothing already imported is lost."""

import pytest
from pydicom.encaps import encapsulate, generate_frames
from sqlalchemy import func, select

from studyapp.cli import main
from studyapp.db.models import Case, Instance, Report
from studyapp.db.session import open_database
from studyapp.services import pacs, structured_reports, studies
from studyapp.services.errors import InvalidInput
from tests.browser import free_port
from tests.pacs.conftest import PASSWORD, USER, ct_with_uids, read_and_submit


def _counts(sessions):
    with sessions() as session:
        return session.scalar(select(func.count(Case.id))), session.scalar(select(func.count(Instance.id)))


@pytest.fixture()
def imported(orthanc, tmp_path):
    """A study holding the three CR studies of the PACS; returns (sessions, data_dir, their StudyInstanceUIDs)."""
    data_dir = tmp_path / "data"
    sessions = open_database(f"sqlite:///{data_dir / 'study.db'}")
    uids = [h.study_instance_uid for h in pacs.search_studies(orthanc.connection,
                                                              pacs.SearchCriteria(modality="CR")).hits]
    with sessions.begin() as session:
        report = pacs.import_studies(session, studies.create_study(session, "S"), orthanc.connection, uids, data_dir)
        assert not report.failed
    return sessions, data_dir, uids


def test_unreachable_pacs_and_wrong_credentials(orthanc, imported, capsys, monkeypatch):
    sessions, data_dir, uids = imported
    before = _counts(sessions)
    nowhere = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(pacs.PacsError, match=f"the PACS at {nowhere} cannot be reached") as refused:
        pacs.search_studies(pacs.PacsConnection(nowhere), pacs.SearchCriteria(modality="CR"))
    port = nowhere.split(":")[2].split("/")[0]
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in str(refused.value)
    assert "HTTPConnectionPool" not in str(refused.value) and "NewConnectionError" not in str(refused.value)
    with pytest.raises(pacs.PacsError, match="cannot connect to pacs.invalid:8042: the name 'pacs.invalid' is not "
                                             "known"):
        pacs.search_studies(pacs.PacsConnection("http://pacs.invalid:8042/dicom-web"), pacs.SearchCriteria())
    wrong = pacs.PacsConnection(orthanc.connection.url, USER, "not-the-password")
    with pytest.raises(pacs.PacsError, match=r"refused the credentials \(HTTP 401\)"):
        pacs.search_studies(wrong, pacs.SearchCriteria())
    with sessions.begin() as session:
        report = pacs.import_studies(session, studies.get_study(session, "S"), wrong, uids[:1], data_dir)
    [outcome] = report.studies
    assert outcome.status == "failed" and outcome.errors[0].startswith(f"study {uids[0]}: ")
    assert "refused the credentials" in outcome.errors[0]

    monkeypatch.setenv("PW", PASSWORD)
    common = ["--data-dir", str(data_dir)]
    assert main(common + ["pacs-import", "S", nowhere, "--study-uid", uids[1], "--username", USER,
                          "--password-env", "PW"]) == 1
    out = capsys.readouterr().out
    assert f"study {uids[1]}: failed" in out and "cannot be reached" in out
    assert main(common + ["pacs-search", orthanc.connection.url, "--username", USER, "--password-env", "NOPE"]) == 1
    assert "environment variable NOPE is not set" in capsys.readouterr().err
    assert _counts(sessions) == before  # the cases imported earlier are all still there


def test_qido_answer_without_uids(orthanc):
    client = orthanc.connection.client()
    answer = client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    del answer[0]["0020000D"]  # a PACS that leaves the Study Instance UID out of its answer
    [hit] = pacs.hits_from_qido(answer)
    assert hit.study_instance_uid == "" and "no (0020,000D) Study Instance UID" in hit.problem
    assert "accession CT-ACC-1" in hit.problem
    assert pacs.hits_from_qido([{"0020000D": {"vr": "UI", "Value": 12}}])[0].problem.startswith("study 1 of the")
    with pytest.raises(InvalidInput, match="choose at least one study"):
        pacs.import_studies(None, None, orthanc.connection, [""], "unused")


def test_frame_that_does_not_decode_is_refused_and_the_rest_imports(orthanc, shared_data, tmp_path):
    slices = ct_with_uids(shared_data / "dicom" / "ct_series")[:3]
    study_uid = "1.2.826.0.1.3680043.8.498.4242"
    for number, ds in enumerate(slices):  # a new study of three slices; the second one's codestream is broken
        ds.StudyInstanceUID, ds.AccessionNumber = study_uid, "BROKEN-1"
        ds.SeriesInstanceUID = study_uid + ".1"
        ds.SOPInstanceUID = f"{study_uid}.1.{number + 1}"
        if number == 1:
            frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
            frame[:64] = bytes(64)
            ds.PixelData = encapsulate([bytes(frame)])
        orthanc.store(ds)
    [good] = pacs.search_studies(orthanc.connection, pacs.SearchCriteria(accession_numbers=("CT-ACC-1",))).hits
    data_dir = tmp_path / "data"
    sessions = open_database(f"sqlite:///{data_dir / 'study.db'}")
    with sessions.begin() as session:
        report = pacs.import_studies(session, studies.create_study(session, "S"), orthanc.connection,
                                     [study_uid, good.study_instance_uid], data_dir)
    broken, fine = report.studies
    assert broken.status == "partial" and broken.retrieved == 2 and fine.status == "imported"
    [error] = broken.errors
    assert error.startswith(f"study {study_uid}: instance {study_uid}.1.2 was retrieved but its pixel data does "
                            "not decode") and "JPEG 2000" in error
    assert not (pacs.study_folder(data_dir, orthanc.connection.url, study_uid) / f"{study_uid}.1.2.dcm").exists()
    assert _counts(sessions) == (2, 22)
    assert f"study {study_uid}: partial" in report.summary()


def test_sr_export_refusals(orthanc, imported, tmp_path):
    sessions, _, _ = imported
    with sessions() as session:
        study = studies.get_study(session, "S")
        with pytest.raises(InvalidInput, match="has no submitted report to export as DICOM SR: case '.*' has no "
                                               r"submitted report yet \(0 in progress\)"):
            structured_reports.export_srs(session, study, tmp_path / "none")
        key = study.cases[0].case_key
        with pytest.raises(InvalidInput, match=f"^study 'S' \\(case '{key}'\\) has no submitted report to export"):
            structured_reports.export_srs(session, study, tmp_path / "none", case_keys=[key])
        with pytest.raises(InvalidInput, match="has no case 'NO-SUCH-CASE'"):
            structured_reports.export_srs(session, study, tmp_path / "none", case_keys=["NO-SUCH-CASE"])
    assert not (tmp_path / "none").exists()

    _, case_key, _ = read_and_submit(sessions, "S", "FINDINGS: Clear.\x0bIMPRESSION: Normal.", tmp_path)
    with sessions() as session:
        report = structured_reports.export_srs(session, studies.get_study(session, "S"), tmp_path / "sr")
        stored = session.scalars(select(Report.final_text)).one()
    assert report.written == []
    assert any(f"case {case_key!r}" in p and "U+000B at position 17" in p for p in report.problems)
    assert stored == "FINDINGS: Clear.\x0bIMPRESSION: Normal."  # the reader's text is kept as typed


def test_a_pacs_that_never_answers_times_out_per_study(imported):
    import socket

    sessions, data_dir, uids = imported
    with socket.socket() as hung:  # accepts connections (kernel backlog) but never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        connection = pacs.PacsConnection(f"http://127.0.0.1:{hung.getsockname()[1]}/dicom-web", timeout=1)
        with pytest.raises(pacs.PacsError, match=r"did not answer within 1 s"):
            pacs.search_studies(connection, pacs.SearchCriteria(modality="CR"))
        with sessions.begin() as session:
            report = pacs.import_studies(session, studies.get_study(session, "S"), connection, uids[:2], data_dir)
    assert [o.status for o in report.studies] == ["failed", "failed"]
    assert all("did not answer within 1 s" in o.errors[0] for o in report.studies)
    assert _counts(sessions)[0] == 3


def test_a_study_date_that_is_no_calendar_date_is_refused():
    for value in ("20201399", "20230230", "00000000"):
        with pytest.raises(InvalidInput, match=f"study date from must be a calendar date YYYYMMDD, got '{value}'"):
            pacs.SearchCriteria(date_from=value).filters()
    assert pacs.SearchCriteria(date_from="20240229", date_to="20241231").filters() == {
        "StudyDate": "20240229-20241231"}


def test_pixel_data_longer_than_the_header_says_is_refused_at_retrieval(orthanc, shared_data, tmp_path):
    """Issue 11 through the PACS path: a native image whose Rows undercount its Pixel Data decodes (the first
    bytes), so only the geometry check catches it; it is not kept and the study is reported failed."""
    import pydicom

    ds = pydicom.dcmread(shared_data / "dicom" / "edge" / "MR_small.dcm")
    study_uid = "1.2.826.0.1.3680043.8.498.1111"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, study_uid + ".1", study_uid + ".1.1"
    ds.Rows = ds.Rows // 2  # the Pixel Data now holds twice what Rows x Columns x 16 bits needs
    orthanc.store(ds)
    data_dir = tmp_path / "data"
    sessions = open_database(f"sqlite:///{data_dir / 'study.db'}")
    with sessions.begin() as session:
        report = pacs.import_studies(session, studies.create_study(session, "S"), orthanc.connection, [study_uid],
                                     data_dir)
    [outcome] = report.studies
    assert outcome.status == "failed" and outcome.retrieved == 0
    [error] = outcome.errors
    assert error.startswith(f"study {study_uid}: instance {study_uid}.1.1 was retrieved but its header does not fit") and \
        "(7FE0,0010) Pixel Data holds 8192 bytes" in error
    assert not (pacs.study_folder(data_dir, orthanc.connection.url, study_uid) / f"{study_uid}.1.1.dcm").exists()
    assert _counts(sessions) == (0, 0)


def test_send_to_pacs_of_a_folder_without_dicom_files_is_refused(orthanc, imported, tmp_path, capsys, monkeypatch):
    sessions, data_dir, _ = imported
    folder = tmp_path / "seg"
    folder.mkdir()
    (folder / "notes.txt").write_text("not DICOM")
    monkeypatch.setenv("PW", PASSWORD)
    assert main(["--data-dir", str(data_dir), "send-to-pacs", "S", str(folder), "--username", USER,
                 "--password-env", "PW"]) == 1
    err = capsys.readouterr().err
    assert f"no DICOM file (*.dcm) in {folder}" in err and "notes.txt" in err and "Traceback" not in err
    (folder / "notes.dcm").write_text("not DICOM either")
    assert main(["--data-dir", str(data_dir), "send-to-pacs", "S", str(folder), "--username", USER,
                 "--password-env", "PW"]) == 1
    out = capsys.readouterr().out
    assert f"error: {folder / 'notes.dcm'}: not a DICOM file (no DICM prefix after the 128-byte preamble" in out
    assert "force=True" not in out  # pydicom's advice to programmers is not shown to coordinators
