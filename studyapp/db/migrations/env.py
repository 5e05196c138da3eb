"""Alembic environment: runs migrations on the URL set in the Config (see studyapp.db.session)."""

from alembic import context

from studyapp.db import comparisons, models  # noqa: F401  (register their tables on Base.metadata)
from studyapp.db.base import Base
from studyapp.db.session import make_engine

target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
