"""pyproject.toml declares the three packages with requirements.txt's pinned set, and an editable install makes the
commands work from any folder (a real virtual environment on the installed packages, the project installed into it
with pip)."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _requirements() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()}


def test_dependencies_are_the_pinned_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    assert declared == _requirements()
    assert {"pytest==9.2.0", "python-gdcm==3.2.6"} <= set(project["optional-dependencies"]["test"])
    assert not {"pytest==9.2.0", "playwright==1.65.2"} & set(project["dependencies"])
    assert project["scripts"] == {"studyapp": "studyapp.cli:main"}


def test_editable_install_runs_the_commands_from_another_folder(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True, timeout=600)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                              "--disable-pip-version-check", "-e", str(ROOT)], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command, expected in (([str(venv / "bin" / "studyapp"), "--help"], "create-study"),
                              ([str(python), "-m", "analysis", "--help"], "--study"),
                              ([str(python), "-m", "engine.train", "--help"], "--config")):
        run = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and expected in run.stdout, (command, run.stdout, run.stderr)
