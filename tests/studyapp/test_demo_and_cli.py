"""The embedded demo study and the scripted command line, on real DICOM."""

import csv

import pandas as pd
import pytest

from studyapp import demo
from studyapp.cli import main
from studyapp.config import Settings
from studyapp.db.models import Assignment, AuditEvent, Draft
from studyapp.db.session import open_database
from studyapp.services import accounts, studies


def test_demo_study_is_complete_and_idempotent(db, tmp_path):
    settings = Settings(data_dir=tmp_path)
    with db.begin() as session:
        info = demo.ensure_demo(session, settings)
    assert info.created
    with db() as session:
        study = studies.get_study(session, demo.DEMO_STUDY)
        assert sorted(c.case_key for c in study.cases) == ["DEMO-1 (CR)", "DEMO-2 (CR)", "DEMO-3 (DX)", "DEMO-4 (CT)"]
        ct = [c for c in study.cases if c.series[0].modality == "CT"]
        assert len(ct) == 1 and len(ct[0].series[0].instances) == 20
        drafts = session.query(Draft).all()
        assert len(drafts) == 4 * 3
        assert all(d.is_sample for d in drafts if d.arm.code != "template")
        per_reader = pd.Series([a.reader.username for a in session.query(Assignment)]).value_counts()
        assert per_reader.to_dict() == {"reader1": 3, "reader2": 3, "reader3": 3}
    lines = info.credentials_file.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["coordinator", "reader1", "reader2", "reader3"]
    assert oct(info.credentials_file.stat().st_mode)[-3:] == "600"
    with db.begin() as session:
        assert not demo.ensure_demo(session, settings).created
    assert "reader2" in demo.describe(info)


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("create-study", "import-dicom", "import-drafts", "add-user", "assign", "progress", "export", "--serve"):
        assert command in out


def test_scripted_study(tmp_path, shared_data, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run = lambda *args: main(["--database", url, "--data-dir", str(tmp_path), *args])  # noqa: E731
    template = tmp_path / "template.txt"
    template.write_text("FINDINGS: normal.\nIMPRESSION: normal.")
    assert run("create-study", "S", "--template-file", str(template)) == 0
    assert run("import-dicom", "S", str(shared_data / "dicom" / "cxr")) == 0
    out = capsys.readouterr().out
    assert "4 imported" in out and "1.3.6.1.4.1.5962.1.2.9.20040826185059.5457" in out  # keys and UIDs listed
    with open_database(url)() as session:
        keys = [c.case_key for c in studies.get_study(session, "S").cases]
    drafts_csv = tmp_path / "drafts.csv"
    with drafts_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case_key", "arm", "text", "source"])
        for key in keys:
            writer.writerow([key, "llm", f"LLM draft {key}", "gpt-4o"])
            writer.writerow([key, "model", f"Model draft {key}", "medversa"])
        writer.writerow(["no-such-case", "llm", "x", "gpt-4o"])
    assert run("import-drafts", "S", str(drafts_csv)) == 1  # one row refused: exit 1, the valid rows stored
    out = capsys.readouterr().out
    assert "imported 8" in out and "unknown case" in out.lower()
    info_csv = tmp_path / "cases.csv"
    pd.DataFrame({"case_key": [keys[0], "no-such-case"], "indication": ["Cough.", "x"],
                  "label": ["abnormal", "normal"]}).to_csv(info_csv, index=False)
    assert run("import-case-info", "S", str(info_csv)) == 1
    assert "updated 1" in capsys.readouterr().out
    with open_database(url)() as session:
        case = studies.get_study(session, "S").cases[0]
        assert (case.case_key, case.indication, case.label) == (keys[0], "Cough.", "abnormal")
    for reader in ("r1", "r2", "r3"):
        monkeypatch.setenv("PW", f"{reader}-violet-harbour-lantern")
        assert run("add-user", reader, "--study", "S", "--password-env", "PW") == 0
    assert run("assign", "S", "--seed", "3", "--cases-per-reader", "3") == 0
    assert "r1" in capsys.readouterr().out
    out_csv = tmp_path / "reads.csv"
    assert run("export", "S", str(out_csv)) == 0
    reads = pd.read_csv(out_csv)
    assert len(reads) == 9 and set(reads.status) == {"new"}
    assert set(reads.draft_source) <= {"gpt-4o", "medversa", "normal template"}
    with open_database(url)() as session:
        kinds = [e.kind for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert kinds == ["dicom_imported", "template_drafts_added", "drafts_imported", "case_info_imported",
                     "assignments_generated", "reads_exported"]
    # refusals name the problem and exit 1
    capsys.readouterr()
    assert run("progress", "No such study") == 1
    assert "unknown study 'No such study'" in capsys.readouterr().err
    assert run("import-dicom", "S", str(tmp_path / "missing-folder")) == 1
    assert "missing-folder" in capsys.readouterr().err
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    assert run("set-template", "S", str(latin1)) == 1
    assert "utf-8" in capsys.readouterr().err.lower()
    monkeypatch.setenv("PW", "long-enough")
    assert run("add-user", "r5", "--study", "Nope", "--password-env", "PW") == 1
    assert capsys.readouterr().out == ""  # nothing claims the account was added
    assert main(["--database", "garbage://", "progress", "S"]) == 1
    assert "garbage" in capsys.readouterr().err
    monkeypatch.setenv("PW", "short")
    assert run("add-user", "r4", "--password-env", "PW") == 1
    assert "shorter than 8 characters" in capsys.readouterr().err
    monkeypatch.setenv("PW", "12345678")
    assert run("add-user", "r4", "--password-env", "PW") == 1
    assert "top-10 common password" in capsys.readouterr().err


def test_set_password_drops_the_account_from_the_demo_credentials(tmp_path, capsys, monkeypatch):
    """Once a demo account's password is changed, its line leaves demo-credentials.txt, so the accounts printed at
    each start (``describe``) never show a password that no longer works; a refused password changes nothing."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run = lambda *args: main(["--database", url, "--data-dir", str(tmp_path), *args])  # noqa: E731
    credentials = tmp_path / demo.CREDENTIALS_FILE
    assert run("demo") == 0
    before = credentials.read_text().splitlines()
    old = {line.split()[1]: line.split()[2] for line in before}
    capsys.readouterr()

    monkeypatch.setenv("PW", "short")
    assert run("set-password", "reader1", "--password-env", "PW") == 1
    assert credentials.read_text().splitlines() == before
    monkeypatch.setenv("PW", "reader1-amber-lighthouse-quay")
    assert run("set-password", "reader1", "--password-env", "PW") == 0
    assert f"its line in {credentials} removed" in capsys.readouterr().out
    assert credentials.read_text().splitlines() == [line for line in before if line.split()[1] != "reader1"]
    assert oct(credentials.stat().st_mode)[-3:] == "600"
    with open_database(url)() as session:
        assert accounts.authenticate(session, "reader1", "reader1-amber-lighthouse-quay") is not None
        assert accounts.authenticate(session, "reader1", old["reader1"]) is None
        assert accounts.authenticate(session, "reader2", old["reader2"]) is not None
    assert run("demo") == 0  # what each --serve start prints
    shown = capsys.readouterr().out
    assert old["reader1"] not in shown and "reader1" not in shown and old["reader2"] in shown

    for username in ("coordinator", "reader2", "reader3"):
        monkeypatch.setenv("PW", f"{username}-amber-lighthouse-quay")
        assert run("set-password", username, "--password-env", "PW") == 0
    assert credentials.read_text() == ""
    assert run("demo") == 0
    assert "lists no account: the demo accounts' passwords were changed" in capsys.readouterr().out


@pytest.mark.parametrize("invoked, shown", [("/usr/local/bin/studyapp", "usage: studyapp "), ("app.py", "usage: app.py ")])
def test_help_names_the_command_as_invoked(invoked, shown, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", [invoked, "--help"])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith(shown)
