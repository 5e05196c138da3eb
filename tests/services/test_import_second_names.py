"""``import-dicom`` lists every file it found: a symbolic link to a file it reads under another name (the scan
reads each file once) is listed as skipped, naming that file, on a first import and on a re-import."""

import os
import shutil

from studyapp.cli import main


def test_a_link_to_a_file_read_under_another_name_is_listed(shared_data, tmp_path, capsys):
    folder = tmp_path / "import"
    (folder / "series").mkdir(parents=True)
    good = folder / "series" / "good.dcm"
    shutil.copy(shared_data / "dicom" / "cxr" / "pydicom_cr_16x16_rescale.dcm", good)
    shutil.copy(shared_data / "dicom" / "cxr" / "RG1_J2KI.dcm", folder / "other.dcm")
    os.symlink("series/good.dcm", folder / "0-first.dcm")  # first in order, but a link: read under its own name
    os.symlink(good, folder / "series" / "z-again.dcm")
    os.symlink("series", folder / "same_series")  # a folder link: its file is listed under its own name
    run = lambda *args: main(["--data-dir", str(tmp_path / "data"), *args])  # noqa: E731
    assert run("create-study", "S") == 0
    capsys.readouterr()

    assert run("import-dicom", "S", str(folder)) == 0
    out = capsys.readouterr().out
    assert "2 imported, 2 skipped, 0 failed; 2 new case(s)" in out, out
    assert f"skipped: {folder / '0-first.dcm'}: same file as {good}, read once under that name" in out
    assert f"skipped: {folder / 'series' / 'z-again.dcm'}: same file as {good}, read once under that name" in out
    assert "same_series" not in out

    assert run("import-dicom", "S", str(folder)) == 0
    out = capsys.readouterr().out
    assert "0 imported, 4 skipped, 0 failed; 0 new case(s)" in out, out
    assert f"skipped: {good}: already imported" in out
    assert f"skipped: {folder / '0-first.dcm'}: same file as {good}, read once under that name" in out


def test_the_only_name_of_a_file_outside_is_not_a_second_name(shared_data, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(shared_data / "dicom" / "cxr" / "RG1_J2KI.dcm", outside / "other.dcm")
    folder = tmp_path / "import"
    folder.mkdir()
    os.symlink(outside / "other.dcm", folder / "one.dcm")
    run = lambda *args: main(["--data-dir", str(tmp_path / "data"), *args])  # noqa: E731
    assert run("create-study", "S") == 0
    capsys.readouterr()
    assert run("import-dicom", "S", str(folder), "--follow-links-outside") == 0
    assert "1 imported, 0 skipped, 0 failed" in capsys.readouterr().out
    os.symlink(outside / "other.dcm", folder / "two.dcm")  # now two names of one file
    assert run("import-dicom", "S", str(folder), "--follow-links-outside") == 0
    out = capsys.readouterr().out
    assert "0 imported, 2 skipped, 0 failed" in out, out
    assert f"skipped: {outside / 'other.dcm'}: already imported" in out  # read under one.dcm, stored as its target
    assert f"skipped: {folder / 'two.dcm'}: same file as {folder / 'one.dcm'}, read once under that name" in out
