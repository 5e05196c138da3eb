"""Coronal and sagittal reformats of the real 20-slice CT (assets/dicom/ct_series): slice order from Image
Position (Patient), aspect from Pixel Spacing and the slice gap, orientation (right on screen left, anterior on
the left, superior up), the values of the axial voxels, and the series refused with a reason."""

import random
import shutil

import numpy as np
import pydicom
import pytest

from studyapp.dicom import browser, display, reformat


@pytest.fixture
def ct_slices(ct_series_dir):
    files = sorted(ct_series_dir.iterdir())
    random.Random(0).shuffle(files)  # the order of the files must not matter
    return tuple((str(p), 0) for p in files)


def _axial(path):
    decoded = display.load_frame(path, 0)
    return decoded.values.astype(np.int32) + decoded.values_offset


def test_geometry_orders_by_position_and_gives_the_aspect(ct_slices):
    geo = reformat.geometry(ct_slices)
    z = [float(pydicom.dcmread(ct_slices[i][0], stop_before_pixels=True).ImagePositionPatient[2]) for i in geo.order]
    assert z == sorted(z, reverse=True) and len(z) == 20  # superior (+z in LPS) first
    assert (geo.rows, geo.columns) == (512, 512)
    assert geo.slice_mm == pytest.approx(2.0) and geo.column_mm == pytest.approx(0.9765625)
    assert not geo.flip_rows and not geo.flip_columns  # orientation 1\0\0\0\1\0
    assert geo.count("coronal") == 512 and geo.count("sagittal") == 512
    assert geo.display_rows("coronal") == round(20 * 2.0 / 0.9765625) == 41


def test_reformat_rows_equal_the_axial_voxels_they_cross(ct_slices):
    volume = reformat.load_volume(ct_slices)
    top = _axial(ct_slices[volume.geometry.order[0]][0])  # most superior slice
    bottom = _axial(ct_slices[volume.geometry.order[-1]][0])
    coronal = reformat.reformat(volume, "coronal", 300)
    sagittal = reformat.reformat(volume, "sagittal", 200)
    assert coronal.shape == (20, 512) and sagittal.shape == (20, 512)
    np.testing.assert_array_equal(coronal[0], top[300, :])  # coronal row = the axial row at that y
    np.testing.assert_array_equal(coronal[-1], bottom[300, :])
    np.testing.assert_array_equal(sagittal[0], top[:, 200])  # sagittal row = the axial column at that x
    np.testing.assert_array_equal(sagittal[-1], bottom[:, 200])
    assert coronal[:, 200].tolist() == sagittal[:, 300].tolist()  # the two planes meet on one line of voxels


def test_flipped_orientation_keeps_right_on_the_left_and_anterior_first(ct_slices, tmp_path):
    """A copy of the series stored with reversed row and column directions (-1\\0\\0\\0\\-1\\0, pixels rotated
    180 degrees, Image Position moved to the new first voxel) gives the same reformats."""
    flipped = []
    for path, _ in ct_slices:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array[::-1, ::-1].copy()
        ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]) + 511 * 0.9765625,
                                   float(ds.ImagePositionPatient[1]) + 511 * 0.9765625,
                                   float(ds.ImagePositionPatient[2])]
        ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
        ds.PixelData = pixels.tobytes()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        target = tmp_path / (str(len(flipped)) + ".dcm")
        ds.save_as(target)
        flipped.append((str(target), 0))
    original, turned = reformat.load_volume(ct_slices), reformat.load_volume(tuple(flipped))
    assert turned.geometry.flip_rows and turned.geometry.flip_columns
    np.testing.assert_array_equal(reformat.reformat(turned, "coronal", 300), reformat.reformat(original, "coronal", 300))
    np.testing.assert_array_equal(reformat.reformat(turned, "sagittal", 10), reformat.reformat(original, "sagittal", 10))


def test_body_has_square_pixels_and_the_axial_modality_values(ct_slices):
    payload, arrays = browser.unpack(reformat.reformat_body(list(ct_slices), "coronal", 256))
    assert (payload["rows"], payload["columns"]) == (41, 512) and payload["plane"] == "coronal"
    assert payload["spacing"]["row_mm"] == pytest.approx(40 / 41) and payload["spacing"]["column_mm"] == 0.9765625
    values = arrays["values"].reshape(41, 512)
    modality = arrays["modality"]
    volume = reformat.load_volume(ct_slices)
    top = display.modality_values(_axial(ct_slices[volume.geometry.order[0]][0]), volume.decoded.lut_dataset)
    np.testing.assert_array_equal(modality[values[0]], top[256, :])  # HU of the most superior slice's row 256


def test_series_that_cannot_be_reformatted_say_why(ct_slices, tmp_path):
    with pytest.raises(ValueError, match="at least 3 slices"):
        reformat.geometry(ct_slices[:2])
    doubled = tmp_path / "copy.dcm"
    shutil.copy(ct_slices[0][0], doubled)
    with pytest.raises(ValueError, match="same position"):
        reformat.geometry(ct_slices + ((str(doubled), 0),))
    with pytest.raises(ValueError, match="unequal"):
        reformat.geometry(tuple(s for i, s in enumerate(sorted(ct_slices)) if i != 5))
    with pytest.raises(IndexError):
        reformat.reformat(reformat.load_volume(ct_slices), "sagittal", 512)
    with pytest.raises(ValueError, match="unknown reformat plane"):
        reformat.load_volume(ct_slices).geometry.count("oblique")


def test_a_series_headers_are_read_once_while_readers_ask_together(ct_series_dir, tmp_path, monkeypatch):
    """Two requests asking for a series' geometry while its headers are read (the import's background read and a
    reader opening the case) wait for one read; a changed file is read again; a refusal is kept with its reason."""
    import threading

    slices = []
    for index, path in enumerate(sorted(ct_series_dir.iterdir())):
        shutil.copy(path, tmp_path / f"{index:02d}.dcm")
        slices.append((str(tmp_path / f"{index:02d}.dcm"), 0))
    slices = tuple(slices)
    reads, started, release = [], threading.Event(), threading.Event()
    real = reformat._read_geometry

    def slow_read(series):
        reads.append(series)
        started.set()
        release.wait(30)
        return real(series)

    monkeypatch.setattr(reformat, "_read_geometry", slow_read)
    found = []
    threads = [threading.Thread(target=lambda: found.append(reformat.geometry(slices))) for _ in range(2)]
    threads[0].start()
    assert started.wait(30)
    threads[1].start()
    release.set()
    for thread in threads:
        thread.join(30)
    assert len(reads) == 1 and len(found) == 2 and found[0] == found[1] and len(found[0].order) == 20

    ds = pydicom.dcmread(slices[3][0])  # a slice moved onto its neighbour's position: read again, refused
    ds.ImagePositionPatient = pydicom.dcmread(slices[4][0]).ImagePositionPatient
    ds.save_as(slices[3][0])
    with pytest.raises(ValueError, match="same position"):
        reformat.geometry(slices)
    with pytest.raises(ValueError, match="same position"):
        reformat.geometry(slices)
    assert len(reads) == 2
