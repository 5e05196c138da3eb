"""The judge bench at a reduced size (40 cases per kind): the offline judge meets the issue-17 targets on the tune
and on the held-out wordings, and no pair's urgent/emergent count depends on the direction."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_judge_bench_small_meets_targets_on_both_splits():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "judge.py"), "--per-kind", "40"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    for split in ("tune", "heldout"):
        assert f"targets met on the {split} split" in run.stdout
    sensitivities = [float(x) for x in re.findall(r"errors flagged urgent/emergent: ([\d.]+)%", run.stdout)]
    controls = [float(x) for x in re.findall(r"controls with any urgent/emergent: ([\d.]+)%", run.stdout)]
    assert len(sensitivities) == 2 and min(sensitivities) >= 90
    assert len(controls) == 2 and max(controls) <= 2
    assert re.findall(r"depends on the direction: ([\d.]+)%", run.stdout) == ["0.0", "0.0"]
    # the real-wording checks are printed for both halves
    assert len(re.findall(r"urgent terms flagged urgent/emergent: [\d.]+% of \d+", run.stdout)) == 2
    assert len(re.findall(r"real sentences with the side flipped: [\d.]+% of \d+", run.stdout)) == 2
