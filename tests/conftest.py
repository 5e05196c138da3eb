"""Shared fixtures: paths to the real data in ../shared/data and a fresh migrated database."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder (never edit files in it)."""
    assert SHARED_DATA.is_dir(), f"real data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture()
def db(tmp_path):
    """A session factory on a new SQLite file migrated to head."""
    from studyapp.db.session import open_database

    return open_database(f"sqlite:///{tmp_path / 'study.db'}")
