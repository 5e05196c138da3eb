"""``cases``: the study's cases listed and searched from the command line (modality, description, date, label,
practice, key), keys only for scripts such as ``mark-practice``."""

from sqlalchemy import select

from studyapp.cli import main
from studyapp.db.models import Case, Series
from studyapp.db.session import open_database


def test_cases_lists_and_searches(tmp_path, shared_data, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = lambda *args: main(["--database", url, *args])  # noqa: E731
    assert run("create-study", "S") == 0
    assert run("import-dicom", "S", str(shared_data / "dicom" / "cxr")) == 0
    with open_database(url)() as s:
        stored = s.execute(select(Case.case_key, Case.study_description).order_by(Case.id)).all()
        chest = sorted(s.scalars(select(Case.case_key).join(Series).where(Series.body_part == "CHEST")).unique())
    capsys.readouterr()

    assert run("cases", "S") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" · ", 1)[-1] for line in lines] == [key for key, _ in stored]
    assert all(line.split(" · ")[0].split()[0] in {"CR", "DX", "CR/DX"} for line in lines), lines
    # searched by the body part readers see ("CR chest"), whatever the study description says
    assert chest
    assert run("cases", "S", "chest", "--keys") == 0
    assert sorted(capsys.readouterr().out.splitlines()) == chest

    key, description = next((key, d) for key, d in stored if d)
    assert run("cases", "S", description.split()[0].lower(), key[-6:]) == 0
    assert capsys.readouterr().out.splitlines() == [next(line for line in lines if line.endswith(key))]

    assert run("mark-practice", "S", key) == 0
    capsys.readouterr()
    assert run("cases", "S", "practice", "--keys") == 0
    assert capsys.readouterr().out.splitlines() == [key]
    assert run("cases", "S", "no-such-words") == 1
    assert "no case of 'S' matches 'no-such-words'" in capsys.readouterr().err


def test_options_stand_anywhere_among_the_keys(tmp_path, shared_data, capsys):
    """``cases ... --keys | xargs -d '\\n' python app.py mark-practice STUDY --yes`` puts the keys after ``--yes``;
    ``--unmark`` may stand between keys; an unknown option is refused with the command's own usage."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = lambda *args: main(["--database", url, *args])  # noqa: E731
    assert run("create-study", "S") == 0
    assert run("import-dicom", "S", str(shared_data / "dicom" / "cxr")) == 0
    capsys.readouterr()
    assert run("cases", "S", "--keys", "chest") == 0
    chest = capsys.readouterr().out.splitlines()
    assert len(chest) == 2

    assert run("mark-practice", "S", "--yes", *chest) == 0
    assert capsys.readouterr().out.startswith("practice cases: 2 (")
    assert run("mark-practice", "S", chest[0], "--unmark", "--yes", chest[1]) == 0
    assert capsys.readouterr().out.startswith("practice cases: 0 (none); changed 2")

    try:
        run("mark-practice", "S", chest[0], "--bogus")
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("an unknown option was accepted")
    err = capsys.readouterr().err
    assert err.startswith("usage: app.py mark-practice ") and "CASE_KEY" in err, err
    assert "app.py mark-practice: error: unrecognized arguments: --bogus" in err
