"""Start-up time of the command line (issue 21): ``python app.py --help`` and the study commands that need neither
the engine nor Gradio, each run as a coordinator runs it (a new Python process, from the repository root, on a
scratch data folder), ``--repeats`` times.

Printed per command: the median wall-clock seconds, the median CPU seconds of the process (user + system: what the
command itself costs, which other processes on the machine do not inflate) and the load average beside it, then
whether the target is met. Target: median wall time <= 3 s per command on this machine.

    python bench/cli_start.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 3.0


def _run(args: list[str], data_dir: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``python app.py --data-dir DATA_DIR ARGS``.

    Raises:
        RuntimeError: the command failed (its stderr is in the message).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, str(ROOT / "app.py"), "--data-dir", str(data_dir), *args], cwd=ROOT,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise RuntimeError(f"app.py {' '.join(args)} failed ({run.returncode}): {run.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; returns 0 when every command meets the target, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (default 5)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="cli-start-") as scratch:
        data_dir = Path(scratch)
        _run(["create-study", "Bench study"], data_dir)  # the database exists before the timed runs
        os.environ["CLI_START_PASSWORD"] = "bench-password"
        commands = [["--help"], ["create-study", "{n}"], ["questions", "Bench study"], ["progress", "Bench study"],
                    ["add-user", "{n}", "--study", "Bench study", "--password-env", "CLI_START_PASSWORD"]]
        met = True
        for command in commands:
            walls, cpus = [], []
            for repeat in range(args.repeats):
                wall, cpu = _run([part.format(n=f"bench{repeat}") for part in command], data_dir)
                walls.append(wall)
                cpus.append(cpu)
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            met &= wall <= TARGET_S
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"app.py {' '.join(command).replace('{n}', 'NAME'):70s} median {wall:5.2f} s wall, {cpu:5.2f} s CPU "
                  f"({args.repeats} runs; load average {load} on {os.cpu_count()} CPUs)")
    print(f"target <= {TARGET_S:g} s wall per command: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
