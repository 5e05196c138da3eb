"""``python -m engine.data check`` on real files: counts per imaging type x task, errors, exit status."""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from engine.data.__main__ import main
from engine.data.manifest import write_manifest
from tests.engine.data_samples import derm, det_2d, seg_2d, seg_3d  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_check_counts_and_errors(derm, shared_data, capsys):  # noqa: F811
    path = write_manifest([seg_2d("a"), seg_2d("b"), det_2d(shared_data), seg_3d(shared_data)], derm / "m.jsonl")
    result = subprocess.run([sys.executable, "-m", "engine.data", "check", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 4 valid sample(s), 0 invalid row(s)"
    assert [line.split() for line in lines[2:]] == [["chest_xray", "detection", "1"], ["ct", "segmentation", "1"],
                                                     ["dermoscopy", "segmentation", "2"]]
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(seg_2d("c")) | {"task": "captioning"}) + "\n")
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "4 valid sample(s), 1 invalid row(s)" in out
    assert f"{path}:5: unknown task 'captioning'" in err


def test_check_missing_manifest_and_unknown_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", str(tmp_path / "none.jsonl")])
    assert info.value.code == 2 and "manifest not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["convert", "no-such-set", str(tmp_path), str(tmp_path / "o.jsonl")])
    assert info.value.code == 2 and "unknown dataset 'no-such-set'" in capsys.readouterr().err


def test_convert_refuses_an_output_that_cannot_be_a_manifest_before_converting(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("kept")
    for out, message in ((tmp_path / "folder", "is a folder; name the manifest file"),
                         (tmp_path / "file" / "m.jsonl", "is not a folder")):
        with pytest.raises(SystemExit) as info:
            main(["convert", "iu-xray", str(tmp_path / "no-such-root"), str(out)])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"] and not any((tmp_path / "folder").iterdir())
    assert (tmp_path / "file").read_text() == "kept"
    with pytest.raises(SystemExit) as info:
        main(["check", str(tmp_path / "folder")])
    assert info.value.code == 2 and f"manifest {tmp_path / 'folder'} is a folder, not a file" in capsys.readouterr().err
