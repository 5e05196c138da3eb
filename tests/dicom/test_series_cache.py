"""A series decoded once on the real 20-slice CT: the background decode nearest the slice on screen first, shared
with requests for the same slices and with the reformat volume (no slice decoded twice), bounded by the cache,
and a volume larger than the reformat cache refused with the reason."""

import shutil
from concurrent.futures import wait
from pathlib import Path

import pytest

from studyapp.dicom import display, reformat, series_cache


@pytest.fixture
def fresh_ct(ct_series_dir, tmp_path):
    """The CT's slices copied (new cache keys), in file order."""
    slices = []
    for index, path in enumerate(sorted(ct_series_dir.iterdir())):
        target = tmp_path / f"{index:02d}.dcm"
        shutil.copy(path, target)
        slices.append((str(target), 0))
    return slices


def _counting(monkeypatch):
    decoded = []
    real = display.decode_frame
    monkeypatch.setattr(display, "decode_frame",
                        lambda ds, frame=0: decoded.append(Path(ds.filename).name) or real(ds, frame))
    return decoded


def test_a_series_is_decoded_once_nearest_first_and_the_volume_is_a_copy(fresh_ct, monkeypatch):
    decoded = _counting(monkeypatch)
    monkeypatch.setattr(series_cache, "_pool", series_cache.ThreadPoolExecutor(max_workers=1))  # order observable
    futures = series_cache.prefetch(fresh_ct, 10)
    assert len(futures) == 20
    assert series_cache.load_slice(*fresh_ct[10]).values.shape == (512, 512)  # waits for the running decode
    wait(futures)
    assert decoded[:5] == ["10.dcm", "11.dcm", "09.dcm", "12.dcm", "08.dcm"]  # nearest first, then alternately
    assert sorted(decoded) == sorted(Path(p).name for p, _ in fresh_ct)  # each once
    assert series_cache.prefetch(fresh_ct, 3) == []  # all cached: nothing to do
    volume = reformat.load_volume(tuple(fresh_ct))
    assert len(decoded) == 20 and volume.stored.shape == (20, 512, 512) and volume.stored.dtype.itemsize == 2
    assert reformat.load_volume(tuple(fresh_ct)) is volume  # kept


def test_prefetch_stops_at_what_the_cache_holds_and_a_too_large_volume_is_refused(fresh_ct, monkeypatch):
    decoded = _counting(monkeypatch)
    monkeypatch.setattr(display.frame_cache, "max_bytes", 5 * 2**20)
    wait(series_cache.prefetch(fresh_ct, 0, per_slice_bytes=2**20))
    assert sorted(decoded) == ["00.dcm", "01.dcm", "02.dcm", "03.dcm"]  # room for 5, one kept free
    monkeypatch.setattr(reformat._volumes, "max_bytes", 2**20)
    with pytest.raises(ValueError, match=r"the series \(10 MB decoded\) is larger than the reformat cache \(1 MB\)"):
        reformat.load_volume(tuple(fresh_ct))
