"""``python -m engine.tiny --out DIR``: refused output paths (usage errors, exit status 2, nothing written); a build
without library warnings."""

import subprocess
import sys
from pathlib import Path

import pytest

from engine.tiny import main


def test_out_that_cannot_be_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("kept")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("kept")
    for out, message in ((tmp_path / "file" / "ckpt", f"{tmp_path / 'file'} is not a folder"),
                         (tmp_path / "full", "exists and is not an empty folder")):
        with pytest.raises(SystemExit) as info:
            main(["--out", str(out)])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "kept" and [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def test_a_tiny_checkpoint_is_built_and_loaded_without_library_warnings(tmp_path, capsys):
    """peft's call of transformers' deprecated ``is_gradient_checkpointing`` (a FutureWarning) is silenced where
    the LoRA is attached; no other FutureWarning reaches the user."""
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-m", "engine.tiny", "--out",
                          str(tmp_path / "ckpt")], cwd=root, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "FutureWarning" not in run.stderr and "tiny MedVersa checkpoint written" in run.stdout
