"""Alembic migrations build exactly the schema the models declare, and SQLite enforces foreign keys."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from studyapp.db.base import Base
from studyapp.db.models import Assignment
from studyapp.db.session import make_engine, upgrade


def test_upgrade_head_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"render_as_batch": True}), Base.metadata)
    assert diff == []
    assert {"reader_studies", "cases", "instances", "reports", "report_versions", "question_answers",
            "audit_events"} <= set(inspect(engine).get_table_names())


def test_foreign_keys_are_enforced(db):
    with pytest.raises(IntegrityError):
        with db.begin() as session:
            session.add(Assignment(study_id=999, reader_id=999, case_id=999, arm_id=999, position=1))
