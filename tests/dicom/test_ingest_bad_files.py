"""Files the viewer could never show are reported as failed at import, with the reason; the rest imports."""

import os
import shutil

import pydicom

from studyapp.services import ingest, studies


def test_zero_geometry_and_non_utf8_name_fail_alone(db, shared_data, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm"
    shutil.copy(good, folder / "good.dcm")
    for keyword in ("Rows", "BitsAllocated"):
        ds = pydicom.dcmread(good)
        setattr(ds, keyword, 0)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.StudyInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"{keyword.lower()}0.dcm")
    bad_name = os.fsencode(folder) + b"/bad\xffname.dcm"
    shutil.copy(good, bad_name)
    with db.begin() as session:
        study = studies.create_study(session, "S")
        report = ingest.import_folder(session, study, folder)
        failed = {o.path.rsplit("/", 1)[-1]: o.reason for o in report.with_status("failed")}
        assert report.counts["imported"] == 1
        assert "(Rows) is 0" in failed["rows0.dcm"] and "(BitsAllocated) is 0" in failed["bitsallocated0.dcm"]
        assert any("not valid UTF-8" in reason for reason in failed.values())
        assert len(study.cases) == 1
