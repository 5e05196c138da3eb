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
from tests.opened import recording_opens

ROOT = Path(__file__).resolve().parents[2]


def test_check_counts_and_errors(derm, shared_data, capsys):  # noqa: F811
    path = write_manifest([seg_2d("a"), seg_2d("b"), det_2d(shared_data), seg_3d(shared_data)], derm / "m.jsonl")
    result = subprocess.run([sys.executable, "-m", "engine.data", "check", str(path), "--allow-root", str(shared_data)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 4 valid sample(s), 0 invalid row(s)"
    assert [line.split() for line in lines[2:]] == [["chest_xray", "detection", "1"], ["ct", "segmentation", "1"],
                                                     ["dermoscopy", "segmentation", "2"]]
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(seg_2d("c")) | {"task": "captioning"}) + "\n")
    assert main(["check", str(path), "--allow-root", str(shared_data)]) == 1
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


def test_check_refuses_paths_out_of_the_manifest_folder_and_opens_none(derm, shared_data, capsys):
    """Issue 18: ``../../../../etc/passwd`` and ``/etc/shadow`` in a manifest were opened by ``engine.data check``;
    now each row is invalid, naming the path, and neither file (nor the shared data) is opened."""
    escapes = ["../../../../../../../../etc/passwd", "/etc/shadow", str(shared_data / "cxr_png" / "00000001_000.png")]
    rows = [asdict(seg_2d("inside"))] + [
        asdict(seg_2d(f"out-{i}")) | {"images": [{"path": path, "modality": "dermoscopy"}]}
        for i, path in enumerate(escapes)]
    (derm / "escape.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with recording_opens() as opened:
        assert main(["check", str(derm / "escape.jsonl")]) == 1
    out, err = capsys.readouterr()
    assert "1 valid sample(s), 3 invalid row(s)" in out
    for line, path in enumerate(escapes, start=2):
        assert f"escape.jsonl:{line}: images[0].path {path!r} resolves to " in err
    assert "resolves to /etc/passwd, outside the manifest's folder" in err and "--allow-root" in err
    assert not [p for p in opened if p.startswith(("/etc", str(shared_data)))], "a file outside was opened"
    assert main(["check", str(derm / "escape.jsonl"), "--allow-root", str(shared_data), "--no-files"]) == 1
    assert "2 valid sample(s), 2 invalid row(s)" in capsys.readouterr().out  # the shared file; /etc stays out
