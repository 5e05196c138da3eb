"""The PACS round trip against a real Orthanc: store -> search (QIDO-RS) -> import (WADO-RS, folder ingest) ->
read -> final report back as DICOM SR (STOW-RS) -> found in Orthanc; the engine's DICOM SEG sent the same way."""

import highdicom as hd
import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from studyapp.cli import main
from studyapp.db.models import AuditEvent, Case
from studyapp.db.session import open_database
from studyapp.services import pacs, structured_reports, studies
from tests.pacs.conftest import PASSWORD, USER, read_and_submit

FINAL = "FINDINGS:\nSmall left pleural effusion. Überblähung — none.\n\nIMPRESSION:\nSmall left effusion."


def _search(orthanc, **criteria):
    return pacs.search_studies(orthanc.connection, pacs.SearchCriteria(**criteria))


def test_search_by_accession_csv_date_modality_and_description(orthanc, tmp_path):
    accessions = tmp_path / "accessions.csv"
    accessions.write_text("accession_number,note\n16387a,dog\nCT-ACC-1,ct\nNOPE-404,missing\n")
    found = _search(orthanc, accession_numbers=pacs.read_accession_numbers(accessions))
    assert sorted(h.accession_number for h in found.hits) == ["16387a", "CT-ACC-1"]
    assert found.not_found == ["NOPE-404"]
    ct = next(h for h in found.hits if h.accession_number == "CT-ACC-1")
    assert ct.modalities == "CT" and ct.instances == 20 and ct.study_description == "CT abdomen"

    assert sorted(h.modalities for h in _search(orthanc, modality="cr").hits) == ["CR", "CR", "CR"]
    in_2004 = _search(orthanc, date_from="20040101", date_to="20041231").hits
    assert [h.accession_number for h in in_2004] == ["exam Number"]
    assert [h.study_description for h in _search(orthanc, description="thorax").hits] == ["THORAX"]
    with pytest.raises(pacs.InvalidInput, match="reversed"):
        _search(orthanc, date_from="20050101", date_to="20040101")


def _section_texts(sr) -> dict[str, str]:
    """{section name: its text item} of an SR content tree."""
    return {item.ConceptNameCodeSequence[0].CodeMeaning: item.ContentSequence[0].TextValue
            for item in sr.ContentSequence if item.ValueType == "CONTAINER"}


def test_import_read_report_back_as_sr_and_seg(orthanc, tmp_path, capsys):
    data_dir = tmp_path / "data"
    common = ["--data-dir", str(data_dir)]
    auth = ["--username", USER, "--password-env", "PACS_PW"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PACS_PW", PASSWORD)
        assert main(common + ["create-study", "PACS study"]) == 0
        hits = [*_search(orthanc, modality="CT").hits, *_search(orthanc, description="thorax").hits,
                *_search(orthanc, accession_numbers=("16387a",)).hits]
        uids = [h.study_instance_uid for h in hits]
        missing_uid = "1.2.826.0.1.3680043.8.498.1"  # no such study in the PACS: listed, the rest imports
        args = ["pacs-import", "PACS study", orthanc.connection.url, *auth]
        assert main(common + args + sum((["--study-uid", u] for u in [*uids, missing_uid]), [])) == 1
        out = capsys.readouterr().out
        assert f"study {missing_uid}: failed" in out and "lists no instances" in out
        assert out.count(": imported; ") == 3 and "20 instance(s) retrieved" in out

        sessions = open_database(f"sqlite:///{data_dir / 'study.db'}")
        with sessions() as session:
            cases = {c.study_instance_uid: c for c in session.scalars(select(Case))}
            assert set(cases) == set(uids)
            assert {c.pacs_url for c in cases.values()} == {orthanc.connection.url}
            ct = cases[uids[0]]
            assert len(ct.series[0].instances) == 20
            assert all(str(pacs.study_folder(data_dir, orthanc.connection.url, ct.study_instance_uid))
                       in i.file_path for i in ct.series[0].instances)
            # retrieved in the stored transfer syntax: JPEG 2000 lossless, not transcoded by the PACS
            assert {i.transfer_syntax_uid for i in ct.series[0].instances} == {"1.2.840.10008.1.2.4.90"}

        # re-running resumes: nothing retrieved again, nothing duplicated
        assert main(common + args + ["--study-uid", uids[0], "--study-uid", uids[1]]) == 0
        again = capsys.readouterr().out
        assert "0 instance(s) retrieved, 20 already retrieved" in again and "0 imported, 20 skipped" in again

        assignment_id, case_key, arm = read_and_submit(sessions, "PACS study", FINAL, tmp_path)
        out_dir = tmp_path / "sr"
        assert main(common + ["export-sr", "PACS study", str(out_dir), "--case", case_key, "--send", *auth]) == 0
        printed = capsys.readouterr().out
        assert "1 SR file(s) written" in printed and "1 file(s) sent with STOW-RS" in printed

    [path] = out_dir.glob("*_SR.dcm")
    sr = hd.sr.srread(path)
    with sessions() as session:
        case = session.scalars(select(Case).where(Case.case_key == case_key)).one()
        source_uids = {i.sop_instance_uid for s in case.series for i in s.instances}
        study_uid = case.study_instance_uid
    assert sr.StudyInstanceUID == study_uid and sr.Modality == "SR" and sr.CompletionFlag == "COMPLETE"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == study_uid
    assert {i.ReferencedSOPInstanceUID for s in evidence.ReferencedSeriesSequence
            for i in s.ReferencedSOPSequence} == source_uids
    texts = _section_texts(sr)
    assert texts == {"Findings": "Small left pleural effusion. Überblähung — none.",
                     "Impressions": "Small left effusion."}
    observer = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in sr.ContentSequence
                if item.RelationshipType == "HAS OBS CONTEXT"}
    assert observer["Person Observer Name"].PersonName.family_name == "Dr reader1"
    raw = path.read_bytes()
    for secret in (arm.encode(), b"secret-", b"arm "):
        assert secret not in raw, f"{secret!r} is in a blinded SR"

    # Orthanc lists the SR in the source study and gives back the same text
    listed = orthanc.connection.client().search_for_instances(study_instance_uid=study_uid,
                                                              search_filters={"Modality": "SR"})
    [item] = [pydicom.Dataset.from_json(x) for x in listed]
    assert item.SOPInstanceUID == sr.SOPInstanceUID
    back = orthanc.connection.client().retrieve_instance(study_uid, item.SeriesInstanceUID, item.SOPInstanceUID)
    assert _section_texts(back) == texts and back.StudyInstanceUID == study_uid

    # the engine's DICOM SEG of the retrieved CT goes to the same PACS
    from engine.inference import Mask3D
    from engine.processing import load_volume

    folder = pacs.study_folder(data_dir, orthanc.connection.url, uids[0])
    volume = load_volume(folder)
    sources = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    (tmp_path / "seg").mkdir()
    mask = Mask3D("bone", (volume[0].numpy() > 300).astype(np.uint8), volume.affine.numpy(), 0)
    seg_path = mask.save_dicom_seg(tmp_path / "seg" / "bone_seg.dcm", sources)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PACS_PW", PASSWORD)
        assert main(common + ["send-to-pacs", "PACS study", str(seg_path.parent), *auth]) == 0
    assert "1 file(s) sent with STOW-RS" in capsys.readouterr().out
    segs = orthanc.connection.client().search_for_instances(study_instance_uid=uids[0],
                                                            search_filters={"Modality": "SEG"})
    assert [pydicom.Dataset.from_json(x).SOPInstanceUID for x in segs] == [pydicom.dcmread(seg_path).SOPInstanceUID]
    with sessions() as session:
        kinds = [e.kind for e in session.scalars(select(AuditEvent))]
    assert kinds.count("pacs_imported") == 2 and "sr_exported" in kinds and kinds.count("pacs_sent") == 2


def test_unblinded_research_export_names_the_arm(orthanc, tmp_path):
    data_dir = tmp_path / "data"
    sessions = open_database(f"sqlite:///{data_dir / 'study.db'}")
    hits = _search(orthanc, modality="CR").hits
    with sessions.begin() as session:
        study = studies.create_study(session, "S")
        pacs.import_studies(session, study, orthanc.connection, [h.study_instance_uid for h in hits], data_dir)
    _, case_key, arm = read_and_submit(sessions, "S", "FINDINGS: Heart size normal. IMPRESSION: Normal.", tmp_path)
    with sessions() as session:
        study = studies.get_study(session, "S")
        blinded = structured_reports.export_srs(session, study, tmp_path / "b", case_keys=[case_key])
        research = structured_reports.export_srs(session, study, tmp_path / "u", case_keys=[case_key], unblinded=True)
    sr = pydicom.dcmread(research.written[0].path)
    comment = [i.TextValue for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Comment"]
    assert len(comment) == 1 and f"reader-study arm {arm} " in comment[0]
    assert sr.SOPInstanceUID != blinded.written[0].sop_instance_uid
    assert b"Comment" not in blinded.written[0].path.read_bytes()
