"""A series decoded once on the real 20-slice CT, in worker processes, into the on-disk frame store: every slice
stored once, the slice asked for taken over from the queue, the reformat volume a copy of the stored bodies, the
queue bounded by the store, a slice that cannot be decoded keeping its own error, and the store bounded on disk
(least recently used evicted, taken up again after a restart)."""

import shutil
import threading
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import pytest

from studyapp.dicom import browser, display, reformat, series_cache
from studyapp.dicom.frame_store import FrameStore


@pytest.fixture
def fresh_ct(ct_series_dir, tmp_path):
    """The CT's slices copied (new cache keys), in file order."""
    slices = []
    for index, path in enumerate(sorted(ct_series_dir.iterdir())):
        target = tmp_path / f"{index:02d}.dcm"
        shutil.copy(path, target)
        slices.append((str(target), 0))
    return slices


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A frame store in ``tmp_path`` for this test (the module's store put back afterwards); records each put."""
    monkeypatch.setattr(series_cache, "_store", None)
    made = series_cache.configure(tmp_path / "frames", 64 * 2**20)
    made.puts = []
    real = made.put
    monkeypatch.setattr(made, "put", lambda key, body: made.puts.append(key) or real(key, body))
    return made


def test_a_series_is_decoded_once_in_the_workers_and_the_volume_is_a_copy(fresh_ct, store, monkeypatch):
    futures = series_cache.prefetch(fresh_ct, 10)
    assert len(futures) == 20
    first = series_cache.frame_body(*fresh_ct[10])  # taken over from the queue or waited for, never decoded twice
    assert series_cache.wait_idle(120)
    keys = {series_cache.frame_key(*s) for s in fresh_ct}
    assert sorted(store.puts) == sorted(keys) and len(store) == 20  # each slice stored once
    assert all(f.done() and len(f.result()) > 512 * 512 * 2 for f in futures)
    assert series_cache.prefetch(fresh_ct, 3) == []  # all kept: nothing to do
    header, arrays = browser.unpack(first)
    assert np.array_equal(arrays["stored_lut"][arrays["values"]].reshape(512, 512), display.render_file(*fresh_ct[10]))

    series_cache.bodies.clear()  # from disk now
    decodes = []
    real = display.decode_frame
    monkeypatch.setattr(display, "decode_frame", lambda ds, frame=0: decodes.append(ds.filename) or real(ds, frame))
    assert series_cache.frame_body(*fresh_ct[3]) == store.get(series_cache.frame_key(*fresh_ct[3]))
    volume = reformat.load_volume(tuple(fresh_ct))
    assert volume.stored.shape == (20, 512, 512) and volume.stored.dtype.itemsize == 2
    assert len(decodes) <= 1  # only the middle slice for its tables; no slice decoded or stored again
    assert sorted(store.puts) == sorted([*keys, reformat._geometry_key(tuple(fresh_ct))])  # and the geometry
    assert reformat.load_volume(tuple(fresh_ct)) is volume  # kept
    top = volume.geometry.order[0]
    assert np.array_equal(volume.stored[0], display.load_frame(*fresh_ct[top]).values.astype(np.int32)
                          + display.load_frame(*fresh_ct[top]).values_offset)


def test_the_queue_stops_at_what_the_store_holds_and_a_too_large_volume_is_refused(fresh_ct, store, monkeypatch):
    monkeypatch.setattr(store, "max_bytes", 5 * 2**20)
    wait(series_cache.prefetch(fresh_ct, 0, per_slice_bytes=2**20))
    assert len(store.puts) == 4  # room for 5, one kept free
    assert sorted(store.puts) == sorted(series_cache.frame_key(*s) for s in fresh_ct[:4])  # the nearest
    monkeypatch.setattr(reformat._volumes, "max_bytes", 2**20)
    with pytest.raises(ValueError, match=r"the series \(10 MB decoded\) is larger than the reformat cache \(1 MB\)"):
        reformat.load_volume(tuple(fresh_ct))


def test_a_slice_that_cannot_be_decoded_keeps_its_own_error(fresh_ct, store):
    broken = Path(fresh_ct[5][0])
    broken.write_bytes(broken.read_bytes()[:40_000])
    futures = series_cache.prefetch(fresh_ct, 5)
    wait(futures)
    assert series_cache.wait_idle(60)
    errors = [f.exception() for f in futures if f.exception() is not None]
    assert len(errors) == 1 and isinstance(errors[0], display.UndecodableImageError) and "05.dcm" in str(errors[0])
    assert len(store) == 19
    with pytest.raises(display.UndecodableImageError, match="05.dcm"):
        series_cache.frame_body(*fresh_ct[5])
    assert len(series_cache.frame_body(*fresh_ct[6])) > 0


def test_import_queues_the_series_for_the_store(fresh_ct, store, tmp_path):
    assert series_cache.decode_in_background(fresh_ct[:3]) and series_cache.wait_idle(60)
    assert sorted(store.puts) == sorted(series_cache.frame_key(*s) for s in fresh_ct[:3])


def test_the_store_is_bounded_least_recently_used_and_taken_up_again(tmp_path):
    with pytest.raises(ValueError, match="positive size limit"):
        FrameStore(tmp_path / "f", 0)
    store = FrameStore(tmp_path / "f", 3000)
    for key in "abc":
        store.put(key, key.encode() * 1000)
    assert store.get("a") == b"a" * 1000  # now the most recently used
    store.put("d", b"d" * 1000)
    assert store.get("b") is None and store.get("a") is not None and len(store) == 3
    assert store.total_bytes == 3000 and not (tmp_path / "f" / "b.frame").exists()
    store.put("huge", b"h" * 5000)  # larger than the limit: kept alone
    assert len(store) == 1 and store.get("huge") == b"h" * 5000
    (tmp_path / "f" / "left.tmp").write_bytes(b"half")
    again = FrameStore(tmp_path / "f", 10_000)  # a restart
    assert again.get("huge") == b"h" * 5000 and again.total_bytes == 5000
    assert not (tmp_path / "f" / "left.tmp").exists()
    (tmp_path / "f" / "huge.frame").unlink()  # deleted behind its back
    assert again.get("huge") is None and again.total_bytes == 0


def test_the_apps_folder_import_decodes_its_series_into_the_store(db, fresh_ct, store, tmp_path, monkeypatch):
    from studyapp.db.models import ReaderStudy
    from studyapp.services import images
    from studyapp.services.ingest import import_folder

    folder = Path(fresh_ct[0][0]).parent
    with db.begin() as session:
        study = ReaderStudy(name="pilot")
        session.add(study)
        session.flush()
        import_folder(session, study, folder)  # the command line: nothing decoded
        assert series_cache.wait_idle(60) and store.puts == []
    with db.begin() as session:
        study = session.query(ReaderStudy).one()
        for path, _ in fresh_ct[10:]:  # imported again with 10 slices removed, as the coordinator's screen does
            Path(path).unlink()
        session.query(ReaderStudy).one().cases[0].series[0].instances.clear()
        session.flush()
        import_folder(session, study, folder, decode=True)
    assert series_cache.wait_idle(120)
    for thread in threading.enumerate():  # the reformat geometry read in the background too
        if thread.name == "import-geometry":
            thread.join(60)
    with db() as session:
        slices = tuple(images.series_slices(session.query(ReaderStudy).one().cases[0].series[0]))
    geometry_key = reformat._geometry_key(slices)
    assert sorted(store.puts) == sorted([geometry_key, *(series_cache.frame_key(*s) for s in fresh_ct[:10])])
    kept = reformat.geometry(slices)
    assert len(kept.order) == 10 and (kept.rows, kept.columns) == (512, 512)
    reformat._geometries.clear()  # a restarted server: the geometry comes from the store, no header is read
    monkeypatch.setattr(reformat, "_read_geometry", lambda s: pytest.fail("the headers were read again"))
    assert reformat.geometry(slices) == kept


def test_the_workers_run_below_the_apps_priority():
    """A large import decodes at a lower priority than the app's requests (a reader's saves go first)."""
    import os

    assert series_cache.ready(120)
    own = os.nice(0)
    assert series_cache._workers().submit(os.nice, 0).result(60) == min(19, own + series_cache.WORKER_NICENESS)


def test_a_batch_slice_is_decoded_by_the_workers_and_the_slice_on_screen_at_once(fresh_ct, store, monkeypatch):
    """While the workers run, a slice a batch asks for is decoded by them (a decode in the app's process holds the
    interpreter lock and stalls its other requests); the slice on screen is decoded by the asking thread."""
    assert series_cache.ready(120)
    in_app = []
    real = display.decode_frame  # the workers keep their own (forked from the fork server)
    monkeypatch.setattr(display, "decode_frame", lambda ds, frame=0: in_app.append(ds.filename) or real(ds, frame))
    body = series_cache.frame_body(*fresh_ct[4])
    assert in_app == [] and body == store.get(series_cache.frame_key(*fresh_ct[4]))
    on_screen = series_cache.frame_body(*fresh_ct[9], on_screen=True)
    assert in_app == [fresh_ct[9][0]]
    assert body == browser.encode_file(*fresh_ct[4]) and on_screen == browser.encode_file(*fresh_ct[9])
