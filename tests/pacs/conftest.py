"""A real Orthanc PACS (Debian ``orthanc`` + ``orthanc-dicomweb``) started on loopback for each test, with a temp
storage folder, free HTTP and DICOM ports and basic authentication on, holding the shared DICOM."""

import glob
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests

from sqlalchemy import select

from studyapp.db.models import Assignment
from studyapp.dicom.io import identifying_uids
from studyapp.services import accounts, design, drafts, reading, studies
from studyapp.services.pacs import PacsConnection
from tests.browser import free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = (glob.glob("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*") or [""])[0]
USER, PASSWORD = "pacs-coordinator", "pacs-secret-password"


@dataclass
class Orthanc:
    """A running Orthanc: its REST ``base`` URL, the DICOMweb ``connection`` (with credentials), and ``rest`` for
    calls to Orthanc's own REST API."""

    base: str
    connection: PacsConnection
    rest: requests.Session

    def store(self, path_or_dataset) -> dict:
        """Store one DICOM file (or dataset) through Orthanc's REST API; returns Orthanc's answer."""
        if isinstance(path_or_dataset, pydicom.Dataset):
            from io import BytesIO

            buffer = BytesIO()
            path_or_dataset.save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue()
        else:
            data = Path(path_or_dataset).read_bytes()
        answer = self.rest.post(f"{self.base}/instances", data=data, timeout=30)
        answer.raise_for_status()
        return answer.json()


def ct_with_uids(ct_series_dir: Path) -> list[pydicom.Dataset]:
    """The de-identified CT series with the Study/Series/SOP Instance UIDs the platform derives for it (a PACS
    refuses instances without them)."""
    datasets = []
    for path in sorted(ct_series_dir.iterdir()):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, _ = identifying_uids(path, ds)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.AccessionNumber = "CT-ACC-1"
        ds.StudyDescription = "CT abdomen"
        datasets.append(ds)
    return datasets


def read_and_submit(sessions, study_name, text, tmp_path):
    """Drafts, three readers and a design for the cases of ``study_name``; reader1 submits ``text`` on their first
    case. Returns (assignment id, case_key, arm code)."""
    with sessions.begin() as session:
        study = studies.get_study(session, study_name)
        path = tmp_path / "drafts.csv"
        path.write_text("case_key,arm,text,source\n" + "".join(
            f"{c.case_key},{arm},Draft {arm} {c.case_key}.,secret-{arm}-source\n"
            for c in study.cases for arm in ("llm", "model")))
        assert drafts.import_drafts(session, study, path).errors == []
        drafts.set_template(session, study, "Normal template text.")
        for name in ("reader1", "reader2", "reader3"):
            accounts.enroll_reader(session, study, accounts.add_user(session, name, f"{name}-password",
                                                                     display_name=f"Dr {name}"))
        design.generate_assignments(session, study, seed=3)
        reader = accounts.get_user(session, "reader1")
        assignment = session.scalars(select(Assignment).where(Assignment.reader_id == reader.id)
                                     .order_by(Assignment.position)).first()
        reading.open_case(session, reader, assignment.id)
        session.flush()
        session.expire_all()
        reading.submit(session, reader, assignment.id, text, 42.0, {"confidence": 4, "mental_demand": 2})
        return assignment.id, assignment.case.case_key, assignment.arm.code


@pytest.fixture()
def orthanc(tmp_path, shared_data):
    """Orthanc on 127.0.0.1 with basic auth, holding the four chest radiographs and the 20-slice CT series."""
    assert Path(ORTHANC).exists() and DICOMWEB_PLUGIN, \
        "Orthanc is not installed: apt-get install orthanc orthanc-dicomweb (.ci/run does)"
    root = tmp_path / "orthanc"
    root.mkdir()
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "studyapp-test", "StorageDirectory": str(root / "storage"), "IndexDirectory": str(root / "index"),
        "HttpPort": http_port, "DicomPort": dicom_port, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [DICOMWEB_PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpTimeout": 30, "StableAge": 1,
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = (root / "orthanc.log").open("w")
    process = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    rest = requests.Session()
    rest.auth = (USER, PASSWORD)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"Orthanc exited: {(root / 'orthanc.log').read_text()[-2000:]}"
            try:
                if rest.get(f"{base}/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "Orthanc did not start within 30 s"
            time.sleep(0.2)
        server = Orthanc(base, PacsConnection(f"{base}/dicom-web", USER, PASSWORD), rest)
        for path in sorted((shared_data / "dicom" / "cxr").iterdir()):
            server.store(path)
        for ds in ct_with_uids(shared_data / "dicom" / "ct_series"):
            server.store(ds)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
