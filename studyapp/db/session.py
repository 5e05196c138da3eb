"""Engine and session factory; schema creation runs the Alembic migrations."""

import ast
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


#: Connections kept open. Every handler of the app holds one for its transaction, and up to
#: ``studyapp.ui.reading_tab.AUTOSAVE_WORKERS`` autosaves run at once next to the other events; a connection beyond
#: the pool is closed when it is returned, so a pool smaller than the saves in flight reconnects on most saves
#: (a new PostgreSQL backend process each time).
POOL_SIZE = 16
#: More connections opened when the pool is busy, up to Gradio's 40 worker threads in all.
POOL_OVERFLOW = 24


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with a pool of :data:`POOL_SIZE` (+ :data:`POOL_OVERFLOW`) connections; for
    SQLite, make the folder, enforce foreign keys and use WAL.

    Args:
        url: SQLAlchemy database URL (``sqlite:///path.db`` or ``postgresql+psycopg://...``).
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    memory = url in ("sqlite://", "sqlite:///:memory:")  # one connection (SingletonThreadPool): no pool to size
    # pre-ping: a connection the database dropped (a PostgreSQL restart) is replaced before use, so the first save
    # after an outage is stored instead of failing once
    pool = {} if memory else {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_pre_ping": True}
    engine = create_engine(url, **pool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            # in WAL mode NORMAL syncs at checkpoints, not at every commit: a killed server loses no committed save
            # (only a power cut can lose the last ones); concurrent writers wait up to 10 s instead of failing
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def alembic_config(url: str):
    """Alembic configuration (``alembic.config.Config``) pointing at the packaged migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (``alembic upgrade head``)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def head_revision() -> str:
    """The newest migration's revision id: the one no migration in ``migrations/versions`` names as its
    ``down_revision`` (read from the files' assignments, without importing Alembic).

    Raises:
        RuntimeError: the migrations do not form one chain with a single head.
    """
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if name in ("revision", "down_revision") and isinstance(node.value, ast.Constant):
                    (revisions if name == "revision" else parents).add(node.value.value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS_DIR / 'versions'} have heads {sorted(heads)}, not one")
    return heads.pop()


def _at_head(engine: Engine) -> bool:
    """Whether the database of ``engine`` records the newest migration (then Alembic need not be loaded)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        return set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()) == {head_revision()}


def open_database(url: str) -> sessionmaker[Session]:
    """Migrate the database at ``url`` to head (Alembic is loaded only when it is not there yet) and return the
    one session factory of the process."""
    engine = make_engine(url)
    if not _at_head(engine):
        upgrade(url)
    return sessionmaker(engine, expire_on_commit=False)
