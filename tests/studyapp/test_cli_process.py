"""The command line as a coordinator runs it, in a real process: output cut short by a closed pipe (``| head``)
never leaves a printed case list with nothing stored; ``add-user`` and ``set-password`` ask for the password twice; ``--help`` loads
no database, DICOM or model library."""

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from studyapp.db.models import Case, User
from studyapp.db.session import open_database
from studyapp.services import accounts

ROOT = Path(__file__).resolve().parents[2]


def _app(data_dir: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--data-dir", str(data_dir), *args], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_an_import_whose_output_pipe_is_closed_is_stored(tmp_path, shared_data):
    assert _app(tmp_path, "create-study", "S", stdout=subprocess.DEVNULL).wait(timeout=600) == 0
    # the reader of the output is gone before anything is printed, as with `| head -n 0`
    process = _app(tmp_path, "import-dicom", "S", str(shared_data / "dicom" / "cxr"), stdout=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=600) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    with open_database(f"sqlite:///{tmp_path / 'study.db'}")() as session:
        assert session.scalar(select(func.count(Case.id))) == 4

    again = _app(tmp_path, "import-dicom", "S", str(shared_data / "dicom" / "cxr"), stdout=subprocess.PIPE)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "0 imported, 4 skipped, 0 failed; 0 new case(s)" in out, out  # idempotent
    with open_database(f"sqlite:///{tmp_path / 'study.db'}")() as session:
        assert session.scalar(select(func.count(Case.id))) == 4


def _add_user(tmp_path: Path, typed: str) -> tuple[int, str, str]:
    # a new session has no controlling terminal, so getpass reads the typed lines from stdin
    process = _app(tmp_path, "add-user", "carol", "--coordinator", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                   start_new_session=True)
    out, err = process.communicate(typed, timeout=600)
    return process.returncode, out, err


def test_add_user_asks_for_the_password_twice(tmp_path):
    status, out, err = _add_user(tmp_path, "a-long-password\nanother-password\n")
    assert status == 1
    assert "Repeat the password for carol" in err
    assert "error: the two passwords for 'carol' differ; nothing was changed" in err
    with open_database(f"sqlite:///{tmp_path / 'study.db'}")() as session:
        assert session.scalar(select(func.count(User.id)).where(User.username == "carol")) == 0

    status, out, err = _add_user(tmp_path, "violet-harbour-lantern\nviolet-harbour-lantern\n")
    assert status == 0, err
    assert "added coordinator 'carol'" in out


def test_set_password_asks_twice_and_refuses_an_unknown_account_before_asking(tmp_path):
    def set_password(username: str, typed: str) -> tuple[int, str, str]:
        process = _app(tmp_path, "set-password", username, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       start_new_session=True)
        out, err = process.communicate(typed, timeout=600)
        return process.returncode, out, err

    assert _add_user(tmp_path, "violet-harbour-lantern\nviolet-harbour-lantern\n")[0] == 0
    status, out, err = set_password("nobody", "amber-quarry-meadow\namber-quarry-meadow\n")
    assert status == 1 and "error: unknown user 'nobody'" in err and "Password for" not in err
    status, out, err = set_password("carol", "amber-quarry-meadow\nanother-password\n")
    assert status == 1 and "Repeat the password for carol" in err
    assert "error: the two passwords for 'carol' differ; nothing was changed" in err
    status, out, err = set_password("carol", "amber-quarry-meadow\namber-quarry-meadow\n")
    assert status == 0, err
    assert out == "password of coordinator 'carol' set\n"
    with open_database(f"sqlite:///{tmp_path / 'study.db'}")() as session:
        assert accounts.authenticate(session, "carol", "violet-harbour-lantern") is None
        assert accounts.authenticate(session, "carol", "amber-quarry-meadow").username == "carol"


def test_help_imports_no_heavy_library():
    code = ("import sys; sys.argv = ['app.py', '--help']; import runpy\n"
            "try:\n    runpy.run_path('app.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('sqlalchemy', 'pydicom', 'highdicom', 'pandas', 'torch', 'transformers', "
            "'gradio', 'spacy', 'numpy') if m in sys.modules)\nprint('HEAVY', heavy)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "HEAVY []" in run.stdout, run.stdout + run.stderr


def test_a_study_command_on_a_migrated_database_does_not_load_alembic(tmp_path):
    from alembic.script import ScriptDirectory

    from studyapp.db.session import alembic_config, head_revision

    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert head_revision() == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert _app(tmp_path, "create-study", "S", stdout=subprocess.DEVNULL).wait(timeout=600) == 0  # migrates
    code = ("import sys; from studyapp.cli import main\n"
            f"status = main(['--data-dir', {str(tmp_path)!r}, 'questions', 'S'])\n"
            "print('STATUS', status, 'ALEMBIC', 'alembic' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "STATUS 0 ALEMBIC False" in run.stdout, run.stdout + run.stderr
    assert "1. confidence:" in run.stdout
