"""Command-line actions that remove or overwrite stored work ask first: re-running ``assign``, ``mark-practice``
once an assignment exists, ``import-drafts --replace``, ``set-template`` over stored template drafts and
``import-case-info`` over stored case information. A script
(no terminal) changes nothing without ``--yes`` and is told the counts; on a terminal the command asks y/N."""

import os
import pty
import sqlite3
import select as select_module
import subprocess
import sys
import time

from sqlalchemy import func, select

from studyapp.cli import main
from studyapp.db.models import Arm, Assignment, Case, Draft
from studyapp.db.session import open_database
from studyapp.services import studies
from tests.services.test_practice import _study
from tests.studyapp.test_cli_process import ROOT


def _counts(url):
    with open_database(url)() as s:
        practice = sorted(s.scalars(select(Case.case_key).where(Case.is_practice)))
        return s.scalar(select(func.count(Assignment.id))), practice


def _draft(url, key, arm):
    with open_database(url)() as s:
        return s.scalar(select(Draft.text).join(Case).join(Arm, Draft.arm_id == Arm.id)
                        .where(Case.case_key == key, Arm.code == arm))


def test_a_script_changes_nothing_without_yes_and_is_told_what_would_go(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _study(open_database(url))
    run = lambda *args: main(["--database", url, *args])  # noqa: E731
    assert run("assign", "practice study", "--seed", "1", "--cases-per-reader", "3") == 0
    assert _counts(url) == (12, [])
    capsys.readouterr()

    assert run("mark-practice", "practice study", "case7") == 1
    err = capsys.readouterr().err
    assert ("Changing the practice cases removes the generated assignment of 'practice study': 12 assignment(s) of 4 "
            "reader(s)") in err and "Nothing was changed: add --yes" in err
    assert _counts(url) == (12, [])
    assert run("assign", "practice study", "--seed", "2", "--cases-per-reader", "3") == 1
    assert "Generating again removes and replaces the generated assignment" in capsys.readouterr().err
    with open_database(url)() as s:
        assert studies.get_study(s, "practice study").seed == 1

    assert run("mark-practice", "practice study", "case7", "--yes") == 0
    assert "12 assignments of the old design were removed" in capsys.readouterr().out
    assert _counts(url) == (0, ["case7"])
    assert run("mark-practice", "practice study", "case7") == 0  # nothing to remove: nothing asked
    assert run("assign", "practice study", "--seed", "2", "--cases-per-reader", "3") == 0  # none to replace
    assert run("assign", "practice study", "-y", "--seed", "3", "--cases-per-reader", "3") == 0
    with open_database(url)() as s:
        assert studies.get_study(s, "practice study").seed == 3

    # drafts: --replace asks with the counts per arm; new drafts and unchanged rows do not ask
    new = tmp_path / "drafts.csv"
    new.write_text("case_key,arm,text,source\ncase0,llm,New llm text.,test\ncase1,model,New model text.,test\n"
                   "case2,llm,case2 llm,test\n", encoding="utf-8")
    capsys.readouterr()
    assert run("import-drafts", "practice study", str(new), "--replace") == 1
    err = capsys.readouterr().err
    assert "Importing drafts.csv overwrites 2 stored draft(s) (llm 1, model 1) of 'practice study'" in err
    assert _draft(url, "case0", "llm") == "case0 llm"
    assert run("import-drafts", "practice study", str(new), "--replace", "--yes") == 0
    assert "replaced 2" in capsys.readouterr().out
    assert _draft(url, "case0", "llm") == "New llm text."

    template = tmp_path / "template.txt"
    template.write_text("IMPRESSION: Normal.", encoding="utf-8")
    assert run("set-template", "practice study", str(template)) == 1
    assert "The new template overwrites 8 stored draft(s) (template 8)" in capsys.readouterr().err
    assert _draft(url, "case0", "template") == "case0 template"
    assert run("set-template", "practice study", str(template), "--yes") == 0
    assert run("set-template", "practice study", str(template)) == 0  # the same text: nothing overwritten
    assert _draft(url, "case0", "template") == "IMPRESSION: Normal."


def _case_info(url):
    with open_database(url)() as s:
        return {key: (indication, label) for key, indication, label in
                s.execute(select(Case.case_key, Case.indication, Case.label).where(Case.case_key.in_(
                    ("case0", "case1", "case2"))))}


def test_import_case_info_asks_before_overwriting_stored_values(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _study(open_database(url))
    run = lambda *args: main(["--database", url, *args])  # noqa: E731
    first = tmp_path / "first.csv"
    first.write_text("case_key,indication,label\ncase0,Cough.,normal\ncase1,Fever.,\n", encoding="utf-8")
    assert run("import-case-info", "practice study", str(first)) == 0  # only empty fields set: nothing asked
    assert "updated 2, unchanged 0, errors 0" in capsys.readouterr().out
    stored = {"case0": ("Cough.", "normal"), "case1": ("Fever.", None), "case2": (None, None)}
    assert _case_info(url) == stored

    # case0: indication replaced and label cleared; case1: an empty label set (not an overwrite); case2: new
    second = tmp_path / "second.jsonl"
    second.write_text('{"case_key": "case0", "indication": "Chest pain.", "label": ""}\n'
                      '{"case_key": "case1", "indication": "Fever.", "label": "abnormal"}\n'
                      '{"case_key": "case2", "indication": "Trauma."}\n', encoding="utf-8")
    assert run("import-case-info", "practice study", str(second)) == 1
    err = capsys.readouterr().err
    assert ("Importing second.jsonl overwrites the stored values of 1 case(s) (indication 1, label 1) of "
            "'practice study'. Nothing was changed: add --yes") in err
    assert _case_info(url) == stored

    third = tmp_path / "third.csv"  # two cases overwritten, one field each
    third.write_text("case_key,indication\ncase0,Dyspnoea.\ncase1,Sepsis.\n", encoding="utf-8")
    assert run("import-case-info", "practice study", str(third)) == 1
    assert "overwrites the stored values of 2 case(s) (indication 2)" in capsys.readouterr().err
    assert _case_info(url) == stored

    assert run("import-case-info", "practice study", str(second), "--yes") == 0
    assert "updated 3, unchanged 0, errors 0" in capsys.readouterr().out
    assert _case_info(url) == {"case0": ("Chest pain.", None), "case1": ("Fever.", "abnormal"),
                               "case2": ("Trauma.", None)}
    assert run("import-case-info", "practice study", str(second)) == 0  # the same values again: nothing asked
    assert "updated 0, unchanged 3" in capsys.readouterr().out


def _on_terminal(tmp_path, answer: str, *args: str, while_asked=lambda: None) -> tuple[int, str]:
    """Run the command with stdin and stderr on a pseudo-terminal, call ``while_asked`` once it asks, then type
    ``answer``; (status, terminal text)."""
    main_fd, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--data-dir", str(tmp_path), *args], cwd=ROOT,
                               stdin=terminal, stderr=terminal, stdout=subprocess.PIPE, text=True)
    os.close(terminal)
    seen, deadline = "", time.monotonic() + 600
    while "[y/N]" not in seen and time.monotonic() < deadline and process.poll() is None:
        if select_module.select([main_fd], [], [], 1)[0]:
            seen += os.read(main_fd, 4096).decode(errors="replace")
    while_asked()
    os.write(main_fd, answer.encode() + b"\n")
    out = process.stdout.read()
    status = process.wait(timeout=600)
    while select_module.select([main_fd], [], [], 0.2)[0]:
        try:
            seen += os.read(main_fd, 4096).decode(errors="replace")
        except OSError:
            break
    os.close(main_fd)
    return status, seen + out


def test_on_a_terminal_the_command_asks(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _study(open_database(url))
    assert main(["--database", url, "assign", "practice study", "--seed", "1", "--cases-per-reader", "3"]) == 0

    def others_write():
        # a question left open holds no lock: the app's saves go on meanwhile (a 1 s busy timeout, no waiting)
        with sqlite3.connect(tmp_path / "study.db", timeout=1) as connection:
            connection.execute("UPDATE cases SET indication = 'written meanwhile' WHERE case_key = 'case0'")

    status, text = _on_terminal(tmp_path, "n", "mark-practice", "practice study", "case7", while_asked=others_write)
    assert status == 1, text
    assert "12 assignment(s) of 4 reader(s) (generate it again afterwards). Go on? [y/N]" in text
    assert "not confirmed: nothing was changed" in text
    assert _counts(url) == (12, [])
    with open_database(url)() as s:
        assert s.scalar(select(Case.indication).where(Case.case_key == "case0")) == "written meanwhile"

    status, text = _on_terminal(tmp_path, "y", "mark-practice", "practice study", "case7")
    assert status == 0, text
    assert _counts(url) == (0, ["case7"])
