"""The load bench at a reduced size (5 readers, 20 s, SQLite and PostgreSQL): every autosave succeeds and every
reader's last acknowledged text is the stored one. Latency figures are printed by the bench, not asserted."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_bench_small_has_no_errors_and_no_lost_texts():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--readers", "5", "--duration", "20",
                          "--database", "both"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(run.stdout)
    lines = [line for line in run.stdout.splitlines() if " readers x " in line]
    assert len(lines) == 2, run.stdout + run.stderr
    for line in lines:
        saves = int(re.search(r"(\d+) saves", line).group(1))
        assert saves >= 5 * 3, line  # each reader saved every 5 s
        assert "errors 0; lost texts 0 of 5" in line, line
    assert run.returncode == 0
