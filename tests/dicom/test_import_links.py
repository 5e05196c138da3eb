"""An import stays in its folder (issue 18 item 5): a symbolic link to /etc inside an import folder read 863 files
across /etc, /proc and /usr/bin. Links leading out of the folder are now skipped with a reason naming them, unless
``--follow-links-outside`` is given (and then the import says so). Python's audit events record every file opened."""

import os
import shutil

import pytest

from studyapp.cli import main
from tests.opened import recording_opens

@pytest.fixture()
def linked_folder(dicom_dir, tmp_path):
    """An import folder with one chest radiograph, a link to /etc, a link to a DICOM file outside the folder and
    a folder link that stays inside; the outside file is a second radiograph."""
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(dicom_dir / "cxr" / "RG1_J2KI.dcm", outside / "other.dcm")
    folder = tmp_path / "import"
    (folder / "series").mkdir(parents=True)
    shutil.copy(dicom_dir / "cxr" / "pydicom_cr_16x16_rescale.dcm", folder / "series" / "good.dcm")
    os.symlink("/etc", folder / "etc")
    os.symlink(outside / "other.dcm", folder / "other.dcm")
    os.symlink("series", folder / "same_series")  # inside the folder: followed (the file counts once)
    return folder, outside


def test_links_out_of_the_import_folder_are_skipped_and_named(linked_folder, tmp_path, capsys):
    folder, outside = linked_folder
    data_dir = tmp_path / "data"
    assert main(["--data-dir", str(data_dir), "create-study", "S"]) == 0
    with recording_opens() as opened:
        assert main(["--data-dir", str(data_dir), "import-dicom", "S", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "1 imported, 2 skipped, 0 failed; 1 new case(s)" in out
    assert (f"skipped: {folder / 'etc'}: symbolic link leads outside the import folder {folder}: {folder / 'etc'} -> "
            "/etc; not followed (--follow-links-outside follows it)") in out
    assert f"{folder / 'other.dcm'} -> {outside / 'other.dcm'}; not followed" in out
    assert not [p for p in opened if p.startswith(("/etc", str(outside)))], "a file outside the folder was read"
    assert any(p.endswith("good.dcm") for p in opened)  # the hook does see the import's reads


def test_follow_links_outside_follows_them_and_says_so(linked_folder, tmp_path, capsys):
    folder, outside = linked_folder
    (folder / "etc").unlink()
    data_dir = tmp_path / "data"
    assert main(["--data-dir", str(data_dir), "create-study", "S"]) == 0
    capsys.readouterr()
    with recording_opens() as opened:
        assert main(["--data-dir", str(data_dir), "import-dicom", "S", str(folder), "--follow-links-outside"]) == 0
    captured = capsys.readouterr()
    assert f"following symbolic links that lead outside {folder} (--follow-links-outside)" in captured.err
    assert "2 imported, 0 skipped, 0 failed" in captured.out
    assert "symbolic links leading outside the folder were followed (--follow-links-outside)" in captured.out
    assert str(outside / "other.dcm") in opened
