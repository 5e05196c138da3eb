"""The browser viewer's binary frame body on real DICOM: values and tables that reproduce the server's rendering,
the byte layout the browser reads (aligned little-endian arrays after a JSON header), and the pixel spacing the
ruler uses with its source named."""

import json

import numpy as np
import pydicom
import pytest

from studyapp.dicom import browser, display, series_cache


def test_body_tables_reproduce_the_server_rendering(shared_data):
    path = shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm"  # Rescale 0.684 / 200, MONOCHROME1
    payload, arrays = browser.unpack(series_cache.frame_body(path))
    values = arrays["values"].reshape(payload["rows"], payload["columns"])
    stored_lut = arrays["stored_lut"]
    assert stored_lut.dtype == np.uint8 and np.array_equal(stored_lut[values], display.render_file(path))
    modality = arrays["modality"]
    ds = pydicom.dcmread(path)
    assert np.allclose(modality[values], ds.pixel_array * 0.684 + 200)
    assert payload["invert"] is True and payload["voi_function"] == "LINEAR"
    assert payload["window"] == [float(ds.WindowCenter), float(ds.WindowWidth)]


def test_colour_frames_are_sent_as_rgb(shared_data):
    payload, arrays = browser.unpack(series_cache.frame_body(shared_data / "dicom" / "edge" / "SC_rgb_jpeg_dcmtk.dcm"))
    assert payload["kind"] == "colour" and set(arrays) == {"values"}
    assert arrays["values"].dtype == np.uint8 and arrays["values"].size == payload["rows"] * payload["columns"] * 3


def test_body_layout_is_aligned_little_endian_after_a_json_header():
    values = np.arange(6, dtype=">u2")  # big-endian in memory: sent little-endian
    body = browser.pack({"rows": 2}, {"values": values, "modality": np.array([-1.5, 2.0]),
                                      "lut": np.array([7], np.uint8)})
    size = int.from_bytes(body[:4], "little")
    header = json.loads(body[4:4 + size])
    assert (4 + size) % 8 == 0 and header["rows"] == 2
    assert header["arrays"] == {"values": {"dtype": "<u2", "offset": 0, "length": 6},
                                "modality": {"dtype": "<f8", "offset": 16, "length": 2},
                                "lut": {"dtype": "|u1", "offset": 32, "length": 1}}
    start = 4 + size
    assert body[start:start + 4] == bytes([0, 0, 1, 0])
    _, arrays = browser.unpack(body)
    assert arrays["values"].tolist() == list(range(6)) and arrays["modality"].tolist() == [-1.5, 2.0]
    with pytest.raises(ValueError, match="truncated in lut"):
        browser.unpack(body[:start + 32])


def test_spacing_names_its_source_or_says_uncalibrated(shared_data):
    cxr = shared_data / "dicom" / "cxr"
    read = lambda name: pydicom.dcmread(cxr / name, stop_before_pixels=True)  # noqa: E731
    assert browser.pixel_spacing(read("nih_siim_cr_jpegbaseline.dcm")) == {
        "row_mm": 0.168, "column_mm": 0.168, "source": "Pixel Spacing"}
    assert browser.pixel_spacing(read("pydicom_cr_16x16_rescale.dcm")) == {
        "row_mm": 0.1, "column_mm": 0.1, "source": "Imager Pixel Spacing (at the detector)"}
    assert browser.pixel_spacing(read("RG1_J2KI.dcm")) == {"source": None}  # Pixel Spacing 0.000\\0.000


def test_bodies_are_cached_until_the_file_changes(shared_data, tmp_path):
    copy = tmp_path / "cr.dcm"
    copy.write_bytes((shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm").read_bytes())
    first = series_cache.frame_body(copy)
    assert series_cache.frame_body(copy) is first  # sent again without work
    ds = pydicom.dcmread(copy)
    ds.WindowCenter, ds.WindowWidth = 1000, 500
    ds.save_as(copy)
    changed = series_cache.frame_body(copy)
    assert changed is not first and browser.unpack(changed)[0]["window"] == [1000.0, 500.0]
