"""Display pipeline (DICOM PS3.3 C.11) on the real chest and edge-case files, and hand-computed windowing."""

import copy
import math

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import JPEG2000Lossless, JPEGLossless, JPEGLosslessSV1

from studyapp.dicom import codecs, display

CHEST = ["RG1_J2KI.dcm", "highdicom_dx_image_dog.dcm", "nih_siim_cr_jpegbaseline.dcm", "pydicom_cr_16x16_rescale.dcm"]
EDGE = [
    "CT_small.dcm", "ExplVR_BigEnd.dcm", "JPGExtended.dcm", "MR_small.dcm", "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm",
    "emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm", "examples_ybr_color.dcm", "image_dfl.dcm",
    "liver_1frame.dcm", "rtdose.dcm",
]  # fmt: skip
COLOUR = {"ExplVR_BigEnd.dcm", "SC_rgb_jpeg_dcmtk.dcm", "examples_ybr_color.dcm"}
ALL_FILES = [("cxr", name) for name in CHEST] + [("edge", name) for name in EDGE]
GRAYSCALE_FILES = [item for item in ALL_FILES if item[1] not in COLOUR]
MONOCHROME1_FILES = ["RG1_J2KI.dcm", "highdicom_dx_image_dog.dcm", "pydicom_cr_16x16_rescale.dcm"]


def image_dataset(values, photometric="MONOCHROME2", bits_stored=12, **attributes) -> Dataset:
    """An in-memory single-frame image with ``values`` as its pixel data and extra attributes by keyword."""
    ds = Dataset()
    arr = np.asarray(values)
    ds.set_pixel_data(arr.astype(np.int16 if arr.min() < 0 else np.uint16), photometric, bits_stored)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def pydicom_float_pipeline(ds: Dataset, frame: int) -> np.ndarray:
    """Reference: apply_modality_lut -> apply_voi_lut -> scale pydicom's documented output range -> invert."""
    modality = apply_modality_lut(pixel_array(ds, index=frame), ds)
    if ds.get("VOILUTSequence"):
        modality = np.rint(modality).astype(np.int64)
        y_min, y_max = 0, 2 ** ds.VOILUTSequence[0].LUTDescriptor[2] - 1
    else:
        signed = ds.PixelRepresentation == 1
        y_min = -(2 ** (ds.BitsStored - 1)) if signed else 0
        y_max = 2 ** (ds.BitsStored - 1) - 1 if signed else 2**ds.BitsStored - 1
        if "RescaleSlope" in ds and "RescaleIntercept" in ds:
            y_min, y_max = (v * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for v in (y_min, y_max))
    voi = apply_voi_lut(modality, ds).astype(np.float64)
    scaled = (voi - y_min) / (y_max - y_min) * 255.0
    if ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE":
        scaled = 255.0 - scaled
    return np.clip(scaled, 0, 255)


@pytest.mark.parametrize("folder,name", ALL_FILES)
def test_every_real_file_renders_first_and_last_frame(dicom_dir, folder, name):
    path = dicom_dir / folder / name
    ds = pydicom.dcmread(path)
    frames = display.number_of_frames(ds)
    for frame in sorted({0, frames - 1}):
        img = display.render_file(path, frame)
        expected_shape = (ds.Rows, ds.Columns, 3) if name in COLOUR else (ds.Rows, ds.Columns)
        assert img.shape == expected_shape
        assert img.dtype == np.uint8
        assert img.std() > 5, f"{name} frame {frame} renders almost constant"


@pytest.mark.parametrize("folder,name", GRAYSCALE_FILES)
def test_lookup_table_equals_pydicom_float_pipeline(dicom_dir, folder, name):
    ds = pydicom.dcmread(dicom_dir / folder / name)
    frame = display.number_of_frames(ds) // 2
    decoded = display.decode_frame(ds, frame)
    reference_ds = copy.deepcopy(ds)
    if not ("WindowCenter" in ds or ds.get("VOILUTSequence")):  # the file has no VOI: the estimate applies
        reference_ds.WindowCenter, reference_ds.WindowWidth = decoded.default_window
        reference_ds.VOILUTFunction = "LINEAR_EXACT"
    expected = pydicom_float_pipeline(reference_ds, frame)
    rendered = display.to_display(decoded)
    assert np.abs(rendered.astype(np.float64) - expected).max() <= 1.0


def test_ct_slice_matches_float_pipeline_with_a_preset_window(ct_series_dir):
    path = sorted(ct_series_dir.iterdir())[10]
    ds = pydicom.dcmread(path)
    lung = display.window_presets(display.load_frame(path))["lung"]
    assert lung == (-600.0, 1500.0)
    reference_ds = copy.deepcopy(ds)
    reference_ds.WindowCenter, reference_ds.WindowWidth = lung
    expected = pydicom_float_pipeline(reference_ds, 0)
    rendered = display.render_file(path, window=lung)
    assert np.abs(rendered.astype(np.float64) - expected).max() <= 1.0
    assert not np.array_equal(rendered, display.render_file(path))  # file window 40/300 differs


@pytest.mark.parametrize("name", MONOCHROME1_FILES)
def test_monochrome1_inverted_against_raw_values(dicom_dir, name):
    ds = pydicom.dcmread(dicom_dir / "cxr" / name)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = pixel_array(ds).astype(np.float64)
    img = display.render_frame(ds).astype(np.float64)
    # MONOCHROME1: the minimum stored value is white (PS3.3 C.7.6.3.1.2)
    assert np.corrcoef(raw.ravel(), img.ravel())[0, 1] < -0.95
    lowest, highest = raw <= np.percentile(raw, 1), raw >= np.percentile(raw, 99)
    assert img[lowest].mean() > img[highest].mean() + 40


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "highdicom_dx_image_dog.dcm"])
def test_real_radiographs_show_air_dark_and_bone_bright(dicom_dir, name):
    ds = pydicom.dcmread(dicom_dir / "cxr" / name)
    raw = pixel_array(ds)
    img = display.render_frame(ds)
    air = raw >= np.percentile(raw, 99.5)  # most exposure: highest MONOCHROME1 values
    dense = raw <= np.percentile(raw, 0.5)  # least exposure: bone, collimation
    assert img[air].mean() < 80
    assert img[dense].mean() > 175


def test_windowing_hand_computed_with_rescale():
    # stored 300..700, slope 2, intercept -1000 -> HU -400, -200, -100, 0, 200, 400
    ds = image_dataset([[300, 400, 450], [500, 600, 700]], RescaleSlope=2, RescaleIntercept=-1000)
    ds.WindowCenter, ds.WindowWidth = 0, 400
    # LINEAR (C.11.2.1.2.1): x <= c-0.5-(w-1)/2 -> 0; x > c-0.5+(w-1)/2 -> 255; else ((x-c+0.5)/(w-1)+0.5)*255
    # -100: (-99.5/399 + 0.5) * 255 = 63.91 -> 64; 0: (0.5/399 + 0.5) * 255 = 127.82 -> 128
    assert display.render_frame(ds).tolist() == [[0, 0, 64], [128, 255, 255]]


def test_window_functions_linear_exact_and_sigmoid_hand_computed():
    values = [[0, 50, 100, 150, 200]]
    exact = image_dataset(values, WindowCenter=100, WindowWidth=200, VOILUTFunction="LINEAR_EXACT")
    # (x - c) / w + 0.5: 0, 0.25, 0.5, 0.75, 1.0 -> 0, 63.75, 127.5, 191.25, 255 (round half to even)
    assert display.render_frame(exact).tolist() == [[0, 64, 128, 191, 255]]
    sigmoid = image_dataset(values, WindowCenter=100, WindowWidth=200, VOILUTFunction="SIGMOID")
    expected = [round(255 / (1 + math.exp(-4 * (x - 100) / 200))) for x in values[0]]
    assert expected == [30, 69, 128, 186, 225]  # 255 / (1 + e^(-4(x-c)/w))
    assert display.render_frame(sigmoid).tolist() == [expected]


def test_signed_pixels_index_the_table_from_their_minimum():
    ds = image_dataset([[-1000, -1, 0, 1000]], bits_stored=12)
    assert ds.PixelRepresentation == 1
    decoded = display.decode_frame(ds)
    assert decoded.values_offset == -1000 and decoded.lut_size == 2001
    # LINEAR, c=0 w=2000: -1000 -> 0; -1: (-0.5/1999+0.5)*255 = 127.44; 0: 127.56; 1000 -> 255
    expected = [[0, 127, 128, 255]]
    assert display.display_lut(decoded, window=(0, 2000))[decoded.values].tolist() == expected
    assert display.to_display(decoded, window=(0, 2000)).tolist() == expected


def test_monochrome1_is_inverted_after_the_voi():
    # window 25/50 (LINEAR_EXACT): VOI 0 -> 0, 50 -> 1, 100 -> 1; inverted after VOI -> 255, 0, 0.
    # Inverting the stored values first would give 255, 255, 0.
    ds = image_dataset([[0, 50, 100]], "MONOCHROME1", WindowCenter=25, WindowWidth=50, VOILUTFunction="LINEAR_EXACT")
    assert display.render_frame(ds).tolist() == [[255, 0, 0]]
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PresentationLUTShape = "INVERSE"
    assert display.render_frame(ds).tolist() == [[255, 0, 0]]


def test_voi_lut_sequence_preferred_over_window_and_overridable():
    ds = image_dataset([[90, 100, 101, 102, 103, 150]], WindowCenter=2048, WindowWidth=4096)
    item = Dataset()
    item.LUTDescriptor = [4, 100, 8]  # 4 entries, first stored value mapped 100, 8 bits per entry
    item.LUTData = [0, 50, 200, 255]
    ds.VOILUTSequence = [item]
    # below the first mapped value -> first entry; above the last -> last entry (C.11.2.1.1)
    assert display.render_frame(ds).tolist() == [[0, 0, 50, 200, 255, 255]]
    # a window from the viewer replaces the VOI LUT. LINEAR c=101 w=4: x <= 99 -> 0, x > 102 -> 255,
    # else ((x - 100.5) / 3 + 0.5) * 255: 100 -> 85, 101 -> 170, 102 -> 255
    assert display.render_frame(ds, window=(101, 4)).tolist() == [[0, 85, 170, 255, 255, 255]]


def test_voi_lut_sequence_on_a_real_ct_matches_pydicom(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / "edge" / "CT_small.dcm")
    item = Dataset()
    item.LUTDescriptor = [256, 0, 16]
    item.LUTData = [min(65535, i * 400) for i in range(256)]
    ds.VOILUTSequence = [item]
    expected = pydicom_float_pipeline(ds, 0)
    assert np.abs(display.render_frame(ds).astype(np.float64) - expected).max() <= 1.0


def test_per_frame_functional_group_voi(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / "edge" / "emri_small.dcm")
    windows = {0: (100.0, 200.0), 1: (300.0, 100.0)}
    shared, per_frame = Dataset(), []
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 200.0, 400.0
    shared.FrameVOILUTSequence = [voi]
    for frame in range(display.number_of_frames(ds)):
        item = Dataset()
        if frame in windows:
            voi = Dataset()
            voi.WindowCenter, voi.WindowWidth = windows[frame]
            item.FrameVOILUTSequence = [voi]
        per_frame.append(item)
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = per_frame
    for frame, window in [*windows.items(), (5, (200.0, 400.0))]:
        decoded = display.decode_frame(ds, frame)
        assert decoded.default_window == window
        assert np.array_equal(display.to_display(decoded), display.to_display(decoded, window=window))
    frame1 = display.decode_frame(ds, 1)
    assert not np.array_equal(display.to_display(frame1), display.to_display(frame1, window=windows[0]))


def test_multi_frame_navigation(dicom_dir):
    path = dicom_dir / "edge" / "emri_small.dcm"
    ds = pydicom.dcmread(path)
    assert display.number_of_frames(ds) == 10
    frames = [display.render_file(path, frame) for frame in range(10)]
    assert all(not np.array_equal(frames[0], other) for other in frames[1:])
    raw = pixel_array(ds)
    assert np.corrcoef(raw[7].ravel(), frames[7].ravel())[0, 1] > 0.95
    with pytest.raises(IndexError, match="frame 10 requested .* 10 frame"):
        display.render_file(path, 10)


def test_colour_passes_through_as_rgb(dicom_dir):
    path = dicom_dir / "edge" / "examples_ybr_color.dcm"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    rgb = pixel_array(ds, index=3)  # pydicom converts YBR to RGB
    assert np.array_equal(display.render_file(path, 3), rgb)
    assert display.window_presets(display.load_frame(path, 3)) == {}


def test_window_change_reuses_the_decoded_frame(dicom_dir):
    path = dicom_dir / "cxr" / "highdicom_dx_image_dog.dcm"
    decoded = display.load_frame(path)
    narrow = display.render_file(path, window=(100, 50))
    assert display.load_frame(path) is decoded
    assert not np.array_equal(narrow, display.render_file(path))


def test_undecodable_pixel_data_raises_a_clear_error(dicom_dir, tmp_path):
    ds = pydicom.dcmread(dicom_dir / "edge" / "MR_small_jp2klossless.dcm")
    assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(range(256)) * 4])  # J2K marker, then garbage
    corrupt = tmp_path / "corrupt_j2k.dcm"
    ds.save_as(corrupt)
    with pytest.raises(display.UndecodableImageError) as error:
        display.render_file(corrupt)
    assert str(corrupt) in str(error.value)
    assert "JPEG 2000 Image Compression (Lossless Only)" in str(error.value)


def test_truncated_native_pixel_data_raises_a_clear_error(dicom_dir, tmp_path):
    data = (dicom_dir / "edge" / "CT_small.dcm").read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(display.UndecodableImageError, match="truncated.dcm .*Explicit VR Little Endian"):
        display.render_file(truncated)


def test_not_dicom_and_unsupported_photometric_raise_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(display.UndecodableImageError, match="notes.txt as DICOM"):
        display.render_file(text)
    palette = image_dataset([[1, 2]], "MONOCHROME2")
    palette.PhotometricInterpretation = "PALETTE COLOR"
    with pytest.raises(display.UndecodableImageError, match="PALETTE COLOR is not supported"):
        display.render_frame(palette)


def test_invalid_window_width_is_rejected(dicom_dir):
    with pytest.raises(ValueError, match="Window width must be > 0"):
        display.render_file(dicom_dir / "cxr" / "highdicom_dx_image_dog.dcm", window=(100, 0))


def test_default_window_estimated_when_the_file_has_none(dicom_dir):
    path = dicom_dir / "cxr" / "nih_siim_cr_jpegbaseline.dcm"
    decoded = display.load_frame(path)
    raw = pixel_array(pydicom.dcmread(path)).astype(np.float64)
    low, high = np.percentile(raw, [0.5, 99.5])
    center, width = decoded.default_window
    assert abs(center - (low + high) / 2) <= 2 and abs(width - (high - low)) <= 4
    img = display.render_file(path)
    assert img.min() == 0 and img.max() == 255


def test_projection_presets_pick_the_dense_end(dicom_dir):
    decoded = display.load_frame(dicom_dir / "cxr" / "RG1_J2KI.dcm")
    presets = display.window_presets(decoded)
    assert set(presets) == {"default", "wide", "lung", "soft tissue", "bone"}
    assert presets["default"] == (15000.0, 30000.0)
    bone_center, _ = presets["bone"]
    assert bone_center < presets["soft tissue"][0] < presets["lung"][0]  # MONOCHROME1: dense is low, lucent high
    sample = decoded.modality_sample
    assert presets["lung"] == (round(float(np.mean(np.percentile(sample, [25, 98])))),
                               round(float(np.ptp(np.percentile(sample, [25, 98])))))
    assert all(float(v).is_integer() for window in presets.values() for v in window)  # rounded for typing back
    assert presets["wide"][1] == float(decoded.modality_sample.max() - decoded.modality_sample.min())


def test_lung_preset_of_a_monochrome2_radiograph_covers_the_lucent_end(dicom_dir):
    decoded = display.load_frame(dicom_dir / "cxr" / "nih_siim_cr_jpegbaseline.dcm")
    presets = display.window_presets(decoded)
    assert presets["lung"][0] < presets["soft tissue"][0] < presets["bone"][0]  # MONOCHROME2: lucent is low


def test_rounded_window():
    assert display.rounded_window((1234.56, 789.4)) == (1235.0, 789.0)
    assert display.rounded_window((0.123456, 0.0456789)) == (0.123, 0.0457)


def test_resize_and_zoom(dicom_dir):
    img = display.render_file(dicom_dir / "cxr" / "RG1_J2KI.dcm")
    small = display.resize_for_display(img, 1024)
    assert small.shape == (1024, round(1841 * 1024 / 1955)) and small.dtype == np.uint8
    assert abs(float(small.mean()) - float(img.mean())) < 2
    crop = display.zoom(img, 2.0, center=(0.0, 0.0))
    assert crop.shape == (978, 920) and np.array_equal(crop, img[:978, :920])
    with pytest.raises(ValueError, match="max_side"):
        display.resize_for_display(img, 0)


def test_viewer_size_resamples_stored_values_once(dicom_dir):
    path = dicom_dir / "cxr" / "RG1_J2KI.dcm"
    full = display.render_file(path)
    small = display.render_file(path, max_side=1024)
    assert small.shape == (1024, 964)
    # windowing resampled stored values ~ resampling the windowed image (the window here is linear)
    diff = np.abs(small.astype(int) - display.resize_for_display(full, 1024).astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 2
    assert display.load_frame(path, 0, 1024) is display.load_frame(path, 0, 1024)
    assert display.downsample(display.load_frame(path), 4000) is display.load_frame(path)
    colour = display.render_file(dicom_dir / "edge" / "examples_ybr_color.dcm", 0, max_side=160)
    assert colour.shape == (120, 160, 3)


def test_frame_cache_is_bounded_by_bytes(dicom_dir):
    path = dicom_dir / "edge" / "emri_small.dcm"
    frames = [display.load_frame(path, frame) for frame in range(3)]
    cache = display.FrameCache(max_bytes=2 * frames[0].nbytes)
    for index, decoded in enumerate(frames):
        cache.put(("emri", index), decoded)
    assert len(cache) == 2 and cache.get(("emri", 0)) is None
    assert cache.get(("emri", 2)) is frames[2]


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEGLossless])
def test_jpeg_lossless_decodes_without_gdcm(dicom_dir, tmp_path, syntax):
    source = pydicom.dcmread(dicom_dir / "edge" / "CT_small.dcm")
    raw = pixel_array(source)  # int16, 128..2191
    stream = imagecodecs.jpeg8_encode(raw.astype(np.uint16), lossless=True, bitspersample=16, predictor=1)
    derived = copy.deepcopy(source)
    derived.PixelData = encapsulate([stream])
    derived["PixelData"].VR = "OB"
    derived.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "ct_jpeg_lossless.dcm"
    derived.save_as(path)
    assert codecs.decoding_plugins(syntax) == [codecs.PLUGIN_LABEL]
    ds = pydicom.dcmread(path)
    assert np.array_equal(pixel_array(ds, decoding_plugin="gdcm"), raw)  # an independent decoder agrees
    assert np.array_equal(display.render_file(path), display.render_frame(source))
