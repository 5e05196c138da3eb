"""``python -m engine.tiny --out DIR``: refused output paths (usage errors, exit status 2, nothing written)."""

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
