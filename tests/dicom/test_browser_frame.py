"""The browser viewer's frame payload on real DICOM: values and tables that reproduce the server's rendering,
and the pixel spacing the ruler uses with its source named."""

import base64

import numpy as np
import pydicom

from studyapp.dicom import browser, display


def _array(text, dtype):
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def test_payload_tables_reproduce_the_server_rendering(shared_data):
    path = shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm"  # Rescale 0.684 / 200, MONOCHROME1
    payload = browser.frame_payload(path)
    values = _array(payload["values"], "<u2" if payload["bytes_per_value"] == 2 else np.uint8)
    values = values.reshape(payload["rows"], payload["columns"])
    stored_lut = _array(payload["stored_lut"], np.uint8)
    assert np.array_equal(stored_lut[values], display.render_file(path))  # the file's own VOI
    modality = _array(payload["modality"], "<f8")
    ds = pydicom.dcmread(path)
    assert np.allclose(modality[values], ds.pixel_array * 0.684 + 200)
    assert payload["invert"] is True and payload["voi_function"] == "LINEAR"
    assert payload["window"] == [float(ds.WindowCenter), float(ds.WindowWidth)]


def test_colour_frames_are_sent_as_rgb(shared_data):
    payload = browser.frame_payload(shared_data / "dicom" / "edge" / "SC_rgb_jpeg_dcmtk.dcm")
    assert payload["kind"] == "colour" and "stored_lut" not in payload
    assert _array(payload["values"], np.uint8).size == payload["rows"] * payload["columns"] * 3


def test_spacing_names_its_source_or_says_uncalibrated(shared_data):
    cxr = shared_data / "dicom" / "cxr"
    read = lambda name: pydicom.dcmread(cxr / name, stop_before_pixels=True)  # noqa: E731
    assert browser.pixel_spacing(read("nih_siim_cr_jpegbaseline.dcm")) == {
        "row_mm": 0.168, "column_mm": 0.168, "source": "Pixel Spacing"}
    assert browser.pixel_spacing(read("pydicom_cr_16x16_rescale.dcm")) == {
        "row_mm": 0.1, "column_mm": 0.1, "source": "Imager Pixel Spacing (at the detector)"}
    assert browser.pixel_spacing(read("RG1_J2KI.dcm")) == {"source": None}  # Pixel Spacing 0.000\\0.000


def test_payloads_are_cached_until_the_file_changes(shared_data, tmp_path):
    copy = tmp_path / "cr.dcm"
    copy.write_bytes((shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm").read_bytes())
    first = browser.frame_payload(copy)
    assert browser.frame_payload(copy) is first  # sent again without work
    ds = pydicom.dcmread(copy)
    ds.WindowCenter, ds.WindowWidth = 1000, 500
    ds.save_as(copy)
    changed = browser.frame_payload(copy)
    assert changed is not first and changed["window"] == [1000.0, 500.0]
