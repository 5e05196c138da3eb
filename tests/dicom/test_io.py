"""Header reading, UID fallbacks, slice ordering and grouping on the real DICOM files."""

import shutil

import pydicom
import pytest
from pydicom import Dataset

from studyapp.dicom import io


def test_chest_radiograph_header(dicom_dir):
    header = io.read_instance(dicom_dir / "cxr" / "RG1_J2KI.dcm")
    assert (header.modality, header.view_position, header.patient_sex) == ("CR", "PA", "F")
    assert (header.rows, header.columns, header.number_of_frames) == (1955, 1841, 1)
    assert header.photometric_interpretation == "MONOCHROME1"
    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.4.91"
    assert header.sop_class_uid == "1.2.840.10008.5.1.4.1.1.1"
    assert header.study_date == "20040826"
    # no (0010,1010) Patient's Age: birth 1940-03-05, study 2004-08-26 -> 64 years
    assert header.patient_age == "64Y"
    assert header.notes == ()


@pytest.mark.filterwarnings("ignore:Invalid value for VR AS")
@pytest.mark.parametrize(
    "attributes,expected",
    [
        ({"PatientAge": "062Y"}, "62Y"),
        ({"PatientAge": "62"}, "62Y"),  # non-conformant bare number, read as years
        ({"PatientAge": "003M"}, "3M"),
        ({"PatientBirthDate": "20000115", "StudyDate": "20000301"}, "1M"),
        ({"PatientBirthDate": "20000115", "StudyDate": "20000120"}, "5D"),
        ({"PatientBirthDate": "19400305", "StudyDate": "20040304"}, "63Y"),
        ({"PatientBirthDate": "20050101", "StudyDate": "20040101"}, None),  # study before birth
        ({}, None),
    ],
)
def test_patient_age(attributes, expected):
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    assert io.patient_age(ds) == expected


def test_ct_series_sorted_by_slice_position_not_file_name(ct_series_dir, tmp_path):
    sources = sorted(ct_series_dir.iterdir())
    for rank, source in enumerate(sources):  # reverse the name order and nest half of the files
        target = tmp_path / ("a" if rank % 2 else "b") / f"{len(sources) - rank:03d}.dcm"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(source, target)
    scan = io.scan_folder(tmp_path)
    assert len(scan.instances) == 20 and not scan.skipped and not scan.failed
    [series_map] = io.group_by_series(scan.instances).values()
    [members] = series_map.values()
    positions = [float(pydicom.dcmread(h.path, stop_before_pixels=True).ImagePositionPatient[2]) for h in members]
    # axial slices (orientation 1,0,0,0,1,0): the normal is +z, so the key is the z position
    assert [h.sort_key for h in members] == positions
    assert positions == sorted(positions) and positions[0] == -804.5 and positions[-1] == -766.5
    assert [h.instance_number for h in members] == list(range(286, 266, -1))


def test_deidentified_ct_gets_deterministic_uids(ct_series_dir):
    first, second = sorted(ct_series_dir.iterdir())[:2]
    a, b = io.read_instance(first), io.read_instance(second)
    assert a.sop_instance_uid == "1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573"  # Media Storage SOP
    assert a.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage, from (0002,0002)
    assert (a.study_instance_uid, a.series_instance_uid) == (b.study_instance_uid, b.series_instance_uid)
    assert io.read_instance(first).study_instance_uid == a.study_instance_uid
    assert len(a.notes) == 3 and "Study Instance UID" in a.notes[1]
    assert pydicom.uid.UID(a.study_instance_uid).is_valid


def test_header_only_read_skips_pixel_verification(dicom_dir, tmp_path):
    data = (dicom_dir / "edge" / "CT_small.dcm").read_bytes()
    truncated = tmp_path / "ct.dcm"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    assert io.read_instance(truncated, verify_pixel_data=False).rows == 128
    with pytest.raises(io.UnreadableDicomError, match=r"truncated \(7FE0,0010\) Pixel Data: 19\d+ of 32768 bytes"):
        io.read_instance(truncated)


def test_dicom_without_pixel_data_is_not_an_image(dicom_dir, tmp_path):
    ds = pydicom.dcmread(dicom_dir / "edge" / "CT_small.dcm")
    del ds.PixelData
    path = tmp_path / "no_pixels.dcm"
    ds.save_as(path)
    with pytest.raises(io.NotAnImageError, match=r"without \(7FE0,0010\) Pixel Data \(CT Image Storage\)"):
        io.read_instance(path)


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(NotADirectoryError, match="not found"):
        io.scan_folder(tmp_path / "nowhere")
