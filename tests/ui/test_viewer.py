"""The viewer's image step on real DICOM: zoom and display size, window override, undecodable file and
no stored file messages."""

import os

import numpy as np
import pytest

from studyapp.dicom import display, series_cache
from studyapp.services.images import ImageStack
from studyapp.ui.viewer import VIEW_MAX_SIDE, Viewer


def test_real_chest_renders_at_view_size_and_zooms(shared_data):
    path = str(shared_data / "dicom" / "cxr" / "RG1_J2KI.dcm")  # 1955 x 1841, MONOCHROME1
    stack = ImageStack("PA", "CR", [(path, 0)])
    full, message = Viewer._image(stack, 1, None, 1.0)
    assert max(full.shape) == VIEW_MAX_SIDE and message == ""
    zoomed, _ = Viewer._image(stack, 1, None, 2.0)
    assert max(zoomed.shape) == VIEW_MAX_SIDE  # half the field of view at the same display size
    assert abs(zoomed.shape[0] - full.shape[0]) <= 1 and abs(zoomed.shape[1] - full.shape[1]) <= 1
    # a window 10 units wide saturates nearly every pixel to black or white
    narrow, _ = Viewer._image(stack, 1, (2000.0, 10.0), 1.0)
    assert np.isin(narrow, (0, 255)).mean() > 0.9


def test_ct_stack_message_and_undecodable_file(shared_data, tmp_path):
    slices = sorted((shared_data / "dicom" / "ct_series").iterdir())
    stack = ImageStack("CT", "CT", [(str(p), 0) for p in slices])
    image, message = Viewer._image(stack, 5, (40.0, 400.0), 1.0)
    assert message == "Slice 5 of 20" and image.dtype.name == "uint8" and image.std() > 0
    broken = tmp_path / "broken.dcm"
    data = (shared_data / "dicom" / "cxr" / "RG1_J2KI.dcm").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    image, message = Viewer._image(ImageStack("PA", "CR", [(str(broken), 0)]), 1, None, 1.0)
    assert image is None and message.startswith("**Cannot display this image:**") and "broken.dcm" in message


def test_invalid_window_gives_a_message(shared_data):
    stack = ImageStack("PA", "CR", [(str(shared_data / "dicom" / "cxr" / "nih_siim_cr_jpegbaseline.dcm"), 0)])
    image, message = Viewer._image(stack, 1, (100.0, 0.0), 1.0)
    assert image is None and "width" in message.lower()


def test_presets_offer_named_windows_but_not_the_stored_one_twice(shared_data):
    ct = ImageStack("CT", "CT", [(str(p), 0) for p in sorted((shared_data / "dicom" / "ct_series").iterdir())])
    presets = Viewer._presets(ct, 10)
    assert "default" not in presets and presets["lung"][1] > presets["mediastinum"][1]


def test_an_instance_without_a_stored_file_says_so_without_a_server_path():
    # a study restored from a --no-images archive without --images: the instances' file path is empty
    stack = ImageStack("PA", "CR", [("", 0)])
    image, message = Viewer._image(stack, 1, None, 1.0)
    assert image is None
    assert message == "**Cannot display this image:** no image file stored for this case (restored without images)"
    assert Viewer._presets(stack, 1) == {}
    # the browser viewer's route (series_cache.frame_body) refuses it with the same words, naming no folder
    with pytest.raises(display.NoImageFileError) as refused:
        series_cache.frame_body("", 0)
    assert str(refused.value) == display.NO_IMAGE_FILE and os.getcwd() not in str(refused.value)
    assert not series_cache.is_kept("", 0)
