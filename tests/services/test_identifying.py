"""The Basic Profile attributes (DICOM PS3.15 Annex E) found in a dataset: present with a value, in sequences,
private, in repeating groups; never an empty one; UIDs apart."""

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from studyapp.services.identifying import (
    file_identifying_attributes,
    identifying_attributes,
    identifying_beyond_uids,
    profile_action,
)


def _dataset() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = ""  # type 2, left empty: identifies no one
    ds.Modality = "CR"  # kept by the profile
    ds.StudyInstanceUID = "1.2.3"
    item = Dataset()
    item.InstitutionName = "St Elsewhere"
    ds.ReferencedStudySequence = Sequence([item])
    ds.add_new(0x00091010, "LO", "site secret")  # private
    ds.add_new(0x60023000, "OB", b"\x00\x01")  # overlay data of the second overlay group (60xx)
    return ds


def test_present_attributes_with_their_profile_actions():
    found = {a.keyword: a for a in identifying_attributes(_dataset())}
    assert found["PatientName"].action == "Z" and found["PatientName"].tag == "(0010,0010)"
    assert found["InstitutionName"].action == "X/Z/D"  # inside a sequence item
    assert found["StudyInstanceUID"].action == "U"
    assert found["private"].tag == "(0009,1010)" and found["private"].action == "X"
    assert found["OverlayData"].action == "X" and found["OverlayData"].tag == "(6002,3000)"
    assert "PatientID" not in found and "Modality" not in found
    assert "StudyInstanceUID" not in {a.keyword for a in identifying_beyond_uids(list(found.values()))}


def test_profile_actions_of_single_tags():
    assert profile_action(0x00100010) == "Z"  # PatientName
    assert profile_action(0x00080060) is None  # Modality
    assert profile_action(0x50023000) == "X"  # curve data, group 5002 (a 50xx group)
    assert profile_action(0x60043000) == "X"  # overlay data, group 6004 (a 60xx group)
    assert profile_action(0x00191001) == "X"  # private


def test_a_real_file_is_listed_without_its_values(shared_data):
    path = shared_data / "dicom" / "cxr" / "highdicom_dx_image_dog.dcm"
    found = file_identifying_attributes(path)
    assert {"PatientName", "PatientID", "PatientBirthDate", "InstitutionName"} <= {a.keyword for a in found}
    assert pydicom.dcmread(path).PatientName == "Dog^AVeryGood"
    assert "Dog" not in repr(found)
