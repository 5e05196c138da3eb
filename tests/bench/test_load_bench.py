"""The load bench at a reduced size (4 readers x 10 s and a coordinator watching, SQLite and PostgreSQL): every
scheduled autosave completes, none is refused as "another tab", and every reader's last acknowledged text is the
stored one. Latency figures are printed by the bench, not asserted (they depend on the machine's load)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_bench_small_completes_every_save_with_no_errors_stale_refusals_or_lost_texts():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--readers", "4", "--duration", "10",
                          "--interval", "2.5", "--coordinator-every", "4", "--database", "both"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(run.stdout)
    lines = [line for line in run.stdout.splitlines() if " readers x " in line]
    assert len(lines) == 2, run.stdout + run.stderr
    for line in lines:
        assert "load average" in line, line
        completed, scheduled = map(int, re.search(r"saves completed (\d+) of (\d+)", line).groups())
        assert completed == scheduled == 4 * 4, line  # each reader saved every 2.5 s for 10 s
        assert "errors 0; stale refusals 0; lost texts 0 of 4" in line, line
    coordinator = [line for line in run.stdout.splitlines() if line.startswith("  coordinator: ")]
    assert len(coordinator) == 2 and all(re.search(r"progress [1-9]\d* times", c) for c in coordinator), run.stdout
    assert run.returncode == 0
