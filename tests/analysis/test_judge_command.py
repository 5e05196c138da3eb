"""``python -m analysis judge``: real IU report pairs in a JSONL file, malformed files named line by line, an LLM
endpoint that is not there reported per pair."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import judging
from tests.browser import free_port

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, lines: list) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


@pytest.fixture
def pairs(tmp_path, iu_reports):
    report = iu_reports[0]["findings"]
    return _write(tmp_path / "pairs.jsonl", [
        {"id": "same", "reference": report, "candidate": report},
        "",
        {"id": 7, "reference": f"{report} Large right pneumothorax.", "candidate": report},
        {"id": "ett", "reference": "FINDINGS: The endotracheal tube terminates in the right mainstem bronchus.",
         "candidate": "FINDINGS: Endotracheal tube 4 cm above the carina."},
        {"id": "impression-only", "reference": "IMPRESSION: Small left pleural effusion.",
         "candidate": "Small left pleural effusion."},
    ])


def test_command_writes_one_line_per_pair(pairs, tmp_path):
    out = tmp_path / "judged.jsonl"
    run = subprocess.run([sys.executable, "-m", "analysis", "judge", "--pairs", str(pairs), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "judged 4 of 4 pairs" in run.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["same", 7, "ett", "impression-only"]
    assert [r["urgent_emergent"] for r in records] == [0, 1, 1, 0]
    assert records[0]["discrepancies"] == [] and records[3]["discrepancies"] == []
    assert records[1]["discrepancies"] == [{"line": None, "category": "omission", "severity": "urgent",
                                            "comment": "pneumothorax", "categories": ["omission"],
                                            "correction": "Large right pneumothorax."}]
    (ett,) = records[2]["discrepancies"]
    assert (ett["line"], ett["category"], ett["severity"]) == (1, "wrong_location", "emergent")
    assert all(r["judge"] == {"name": "offline-negex", "version": records[0]["judge"]["version"]} for r in records)
    assert records[0]["judge"]["version"].startswith("cxr-structured")


def test_malformed_lines_are_named_and_nothing_is_written(tmp_path, capsys):
    bad = _write(tmp_path / "bad.jsonl", [
        {"id": 1, "reference": "No pneumothorax.", "candidate": "No pneumothorax."},
        '{"id": 2, "reference": "No pneumothorax.", "candidate": ',
        {"id": 3, "reference": "No pneumothorax."},
        [1, 2],
        {"id": 1, "reference": "a", "candidate": "b"},
        {"id": 5, "reference": None, "candidate": "b"},
        {"id": True, "reference": "a", "candidate": "b"},
    ])
    out = tmp_path / "out.jsonl"
    assert judging.main(["--pairs", str(bad), "--out", str(out)]) == 1
    message = capsys.readouterr().err
    assert "6 malformed line(s)" in message
    for expected in ("line 2: not valid JSON", "line 3: missing 'candidate'",
                     "line 4: expected a JSON object, got list",
                     "line 5: id 1 repeats line 1", "line 6: 'reference' must be a string",
                     "line 7: 'id' must be a string or an integer"):
        assert expected in message
    assert not out.exists()


def test_empty_or_missing_file_is_refused(tmp_path, capsys):
    empty = _write(tmp_path / "empty.jsonl", ["", "  "])
    assert judging.main(["--pairs", str(empty), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "no pairs" in capsys.readouterr().err
    assert judging.main(["--pairs", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "cannot be read" in capsys.readouterr().err


def test_unusable_out_is_refused_before_judging(pairs, tmp_path, capsys):
    before = pairs.read_text()
    for out, named in ((tmp_path, f"--out {tmp_path}: is a folder"),
                       (pairs, f"--out {pairs}: is the pairs file (--pairs)"),
                       (tmp_path / "missing" / "o.jsonl", f"folder {tmp_path / 'missing'} does not exist")):
        # an LLM endpoint nobody listens on: judging would take --llm-timeout per pair, refusing is immediate
        status = judging.main(["--pairs", str(pairs), "--out", str(out), "--judge", "llm", "--llm-url",
                               f"http://127.0.0.1:{free_port()}/v1", "--llm-timeout", "30"])
        err = capsys.readouterr().err
        assert status == 1 and err.count("\n") == 1 and named in err, err
    assert pairs.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl"]


def test_usage_errors_exit_2(pairs, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        judging.main(["--pairs", str(pairs), "--out", str(tmp_path / "o.jsonl"), "--judge", "llm"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        judging.main(["--out", str(tmp_path / "o.jsonl")])
    assert exit_info.value.code == 2
    for bad in (["--llm-url", "ftp://example.org/v1"],
                ["--llm-url", "http://127.0.0.1:9/v1", "--llm-concurrency", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            judging.main(["--pairs", str(pairs), "--out", str(tmp_path / "o.jsonl"), "--judge", "llm", *bad])
        assert exit_info.value.code == 2
    assert not (tmp_path / "o.jsonl").exists()


def test_llm_endpoint_down_is_reported_per_pair(pairs, tmp_path, capsys):
    out = tmp_path / "llm.jsonl"
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    status = judging.main(["--pairs", str(pairs), "--out", str(out), "--judge", "llm", "--llm-url", url,
                           "--llm-timeout", "5"])
    assert status == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["same", 7, "ett", "impression-only"]
    assert all(r["urgent_emergent"] is None and r["discrepancies"] is None and r["error"] for r in records)
    err = capsys.readouterr().err
    assert 'pair "same" (line 1) not judged' in err and "pair 7 (line 3) not judged" in err
