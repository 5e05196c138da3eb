"""Benchmark: analyse a simulated study of 10 readers x 75 cases (750 reports, 6,750 peer comparisons) with
the offline judge on one core; prints seconds and peak memory. Target (issue 5): under 30 s.

Usage: python bench/analysis.py [--out DIR]   (with --out, also times writing CSVs, figures and the report;
PNG export runs Chromium in its own processes, not counted in this process's peak memory)
"""

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import analyse_frames  # noqa: E402
from analysis.pipeline import TABLE_COLUMNS  # noqa: E402
from analysis.report import write_outputs  # noqa: E402
from analysis.simulation import simulate_study  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write outputs here (default: a temp folder)")
    args = parser.parse_args()
    frames = simulate_study(n_readers=10, n_cases=75)
    start, cpu = time.perf_counter(), time.process_time()
    result = analyse_frames(frames)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    pairs = len(result.tables["peer_pairs"])
    print(f"readings: {len(result.tables['readings'])}, peer comparisons: {pairs}, cores: "
          f"{len(os.sched_getaffinity(0))}")
    print(f"analysis (offline judge, intervals from 3 one-way bootstraps of 1,000 resamples, mixed models, "
          f"figures built): {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        start = time.perf_counter()
        write_outputs(result, out, TABLE_COLUMNS)
        print(f"writing CSVs, figures (HTML + PNG via kaleido) and report.html: {time.perf_counter() - start:.1f} s")
    print(f"peak memory (max RSS of this process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
