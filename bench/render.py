"""Benchmark of the DICOM display pipeline and of DICOM import; prints figures, asserts nothing.

For each chest file in ../shared/data/dicom/cxr: median ms to decode a frame (``decode_frame``: pixel decoding plus
preparing the lookup index), then decoded pixels -> 8-bit display image at full size and at viewer size (1024 px
longer side: stored values resampled once with ``downsample``, then looked up), each beside the plain pydicom float
pipeline (``apply_modality_lut`` -> ``apply_voi_lut`` -> scale to 0..255 -> MONOCHROME1 inversion) on the same
stored values as the baseline ratio. "display" includes building the lookup table, i.e. what a window/level change
costs. Then the import rate of the CT series (instances/s, SQLite). The load average is printed: other processes
on the machine inflate the medians.

Run on one core (the process pins itself to CPU 0 where the OS allows):
    python bench/render.py [--repeats 30]
Target (issue 2): 1955x1841 15-bit chest CR decoded -> 8-bit display in <= 5 ms median, >= 8x faster than the
float pipeline.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studyapp.db.models import ReaderStudy  # noqa: E402
from studyapp.db.session import open_database  # noqa: E402
from studyapp.dicom import display  # noqa: E402
from studyapp.services.ingest import import_folder  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "dicom"
VIEWER_SIDE = 1024


def timings_ms(func, repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``func()`` in milliseconds (after one warm-up call)."""
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def median_ms(func, repeats: int) -> float:
    """Median wall time of ``func()`` in milliseconds."""
    return statistics.median(timings_ms(func, repeats))


def float_pipeline(stored: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Baseline: pydicom's float Modality LUT -> VOI LUT, scaled by pydicom's output range, inverted, to uint8."""
    signed = ds.PixelRepresentation == 1
    y_min = -(2 ** (ds.BitsStored - 1)) if signed else 0
    y_max = 2 ** (ds.BitsStored - 1) - 1 if signed else 2**ds.BitsStored - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        y_min, y_max = (v * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for v in (y_min, y_max))
    out = apply_voi_lut(apply_modality_lut(stored, ds), ds)
    out = (out - y_min) * (255.0 / (y_max - y_min))
    if ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE":
        out = 255.0 - out
    return np.clip(out, 0, 255).astype(np.uint8)


def bench_chest(path: Path, repeats: int) -> None:
    ds = pydicom.dcmread(path)
    decoded = display.decode_frame(ds, 0)
    decode = median_ms(lambda: display.decode_frame(ds, 0), max(3, repeats // 6))
    baseline_ds = copy.deepcopy(ds)
    if not ("WindowCenter" in ds or ds.get("VOILUTSequence")):  # same VOI as ours: the estimated window
        baseline_ds.WindowCenter, baseline_ds.WindowWidth = decoded.default_window
        baseline_ds.VOILUTFunction = "LINEAR_EXACT"
    stored = pixel_array(ds, index=0)
    center, width = decoded.default_window
    shifted = (center + width / 10, width * 0.9)  # a window change: a new table every call
    prepare = median_ms(lambda: display.downsample(decoded, VIEWER_SIDE), max(3, repeats // 6))
    viewer_frame = display.downsample(decoded, VIEWER_SIDE)
    viewer_stored = viewer_frame.values.astype(np.int64) + viewer_frame.values_offset
    full_times = timings_ms(lambda: display.to_display(decoded, shifted), repeats)
    full, full_best = statistics.median(full_times), min(full_times)
    viewer = median_ms(lambda: display.to_display(viewer_frame, shifted), repeats)
    table = median_ms(lambda: display.display_lut(decoded, shifted), repeats)
    base_full = median_ms(lambda: float_pipeline(stored, baseline_ds), max(3, repeats // 3))
    base_viewer = median_ms(lambda: float_pipeline(viewer_stored, baseline_ds), max(3, repeats // 3))
    rows, cols = stored.shape[:2]
    small_rows, small_cols = viewer_frame.values.shape[:2]
    print(
        f"{path.name:30s} {rows:>4d}x{cols:<4d} {ds.BitsStored:>2d}-bit {ds.PhotometricInterpretation:11s} "
        f"decode {decode:6.1f} | full: display {full:5.2f} (best {full_best:5.2f}, table {table:4.2f}) "
        f"vs float {base_full:6.2f} "
        f"= {base_full / full:4.1f}x | viewer {small_rows}x{small_cols} (resample once {prepare:5.1f}): "
        f"display {viewer:5.2f} vs float {base_viewer:6.2f} = {base_viewer / viewer:4.1f}x"
    )


def bench_import(folder: Path, runs: int = 3) -> None:
    rates = []
    count = 0
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            sessions = open_database(f"sqlite:///{tmp}/bench.db")
            with sessions.begin() as session:
                study = ReaderStudy(name=f"bench {run}")
                session.add(study)
                session.flush()
                start = time.perf_counter()
                report = import_folder(session, study, folder)
            elapsed = time.perf_counter() - start  # includes the commit
            count = report.counts["imported"]
            rates.append(count / elapsed)
    rate = statistics.median(rates)
    print(f"import {folder.name}: {count} instances, median {rate:.0f} instances/s over {runs} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per figure (default 30)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(
        f"numpy {np.__version__}, pydicom {pydicom.__version__}, CPU affinity {sorted(os.sched_getaffinity(0))}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print("median milliseconds; display = decoded pixels -> uint8 with a new window (table build + lookup)")
    for path in sorted((DATA / "cxr").glob("*.dcm")):
        bench_chest(path, args.repeats)
    bench_import(DATA / "ct_series")


if __name__ == "__main__":
    main()
