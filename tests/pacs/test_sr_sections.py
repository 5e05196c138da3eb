"""The SR export reads the report's sections with the shared parser: the drafts' one-line form "FINDINGS: ...
IMPRESSION: ..." gives both SR sections; a report whose impression would be empty is not exported (and the command
names it) unless allowed, and then its SR has no Impressions section rather than a placeholder."""

import shutil

import pydicom
import pytest
from sqlalchemy import select

from studyapp.cli import main
from studyapp.db.models import Assignment, Case, User
from studyapp.db.session import open_database
from studyapp.services import ingest, reading, studies
from tests.pacs.conftest import read_and_submit


def _texts(path) -> dict[str, str]:
    ds = pydicom.dcmread(path)
    return {item.ConceptNameCodeSequence[0].CodeMeaning: item.ContentSequence[0].TextValue
            for item in ds.ContentSequence if item.ValueType == "CONTAINER"}


def _submit_second(sessions, text: str) -> str:
    """reader2 submits ``text`` on their first case; returns its case_key."""
    with sessions.begin() as session:
        reader = session.scalars(select(User).where(User.username == "reader2")).one()
        assignment = session.scalars(select(Assignment).where(Assignment.reader_id == reader.id)
                                     .order_by(Assignment.position)).first()
        reading.open_case(session, reader, assignment.id)
        session.flush()
        session.expire_all()
        reading.submit(session, reader, assignment.id, text, 30.0, {"confidence": 3, "mental_demand": 3})
        return assignment.case.case_key


@pytest.mark.filterwarnings("error::UserWarning")  # no library warning reaches the coordinator
def test_sections_of_the_sr_and_an_empty_impression(shared_data, tmp_path, capsys):
    data_dir = tmp_path / "data"
    sessions = open_database(f"sqlite:///{data_dir / 'study.db'}")
    folder = tmp_path / "cxr"  # three of the four chest files: three cases, one per arm
    folder.mkdir()
    for path in sorted((shared_data / "dicom" / "cxr").iterdir())[:3]:
        shutil.copy(path, folder / path.name)
    with sessions.begin() as session:
        report = ingest.import_folder(session, studies.create_study(session, "S"), folder)
        assert report.counts["failed"] == 0
    # real IU report text in the one-line form of the README's drafts example (IU 1.xml ends without a full stop)
    one_line = ("FINDINGS: The cardiac silhouette and mediastinum size are within normal limits. There is no "
                "pulmonary edema Impression: Normal chest x-XXXX.")
    _, first_key, _ = read_and_submit(sessions, "S", one_line, tmp_path)
    second_key = _submit_second(sessions, "Heart size normal. Lungs clear.")

    common = ["--data-dir", str(data_dir)]
    cases = ["--case", first_key, "--case", second_key]
    assert main(common + ["export-sr", "S", str(tmp_path / "sr"), *cases]) == 1
    out = capsys.readouterr().out
    assert "1 SR file(s) written" in out
    assert (f"not exported: case {second_key!r}" in out and "reader 'reader2': the SR's impression would be empty "
            "(headings found: none)" in out and "--allow-empty-impression" in out)
    [path] = (tmp_path / "sr").glob("*_SR.dcm")
    assert _texts(path) == {"Findings": "The cardiac silhouette and mediastinum size are within normal limits. "
                                        "There is no pulmonary edema",
                            "Impressions": "Normal chest x-XXXX."}

    assert main(common + ["export-sr", "S", str(tmp_path / "all"), *cases, "--allow-empty-impression"]) == 0
    out = capsys.readouterr().out
    assert "2 SR file(s) written" in out and "0 problem(s), 1 warning(s)" in out
    assert f"warning: case {second_key!r}" in out and "the SR has no impression (headings found: none)" in out
    [empty] = [p for p in (tmp_path / "all").glob("*_SR.dcm") if "reader2" in p.name]
    assert _texts(empty) == {"Findings": "Heart size normal. Lungs clear."}  # no "(none)" placeholder
    assert first_key  # reader1's SR is the same file content as before

    # a practice case's reports are practice reads: never exported, so --send never stores them in a PACS
    with sessions.begin() as session:
        session.scalars(select(Case).where(Case.case_key == first_key)).one().is_practice = True
    other_case = second_key != first_key  # reader2's first case may be the same case
    code = main(common + ["export-sr", "S", str(tmp_path / "practice"), *cases, "--allow-empty-impression"])
    streams = capsys.readouterr()
    assert code == (0 if other_case else 1)
    assert f"practice case {first_key!r}: its reports are practice reads, never exported" in streams.out + streams.err
    written = sorted(p.name for p in (tmp_path / "practice").glob("*_SR.dcm"))
    assert written == ([empty.name] if other_case else [])
