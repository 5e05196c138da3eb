"""Settings read from the environment, with the embedded defaults."""

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path(os.environ.get("STUDYAPP_DATA_DIR", Path.home() / ".studyapp"))


@dataclass(frozen=True)
class Settings:
    """Where the platform keeps its data.

    Attributes:
        data_dir: folder for the embedded SQLite file and caches (``$STUDYAPP_DATA_DIR``, default ``~/.studyapp``).
        database_url: SQLAlchemy URL (``$STUDYAPP_DATABASE_URL``); default ``sqlite:///{data_dir}/study.db``.
            A PostgreSQL URL such as ``postgresql+psycopg://user:pw@host/db`` works the same.
        session_idle_minutes: a sign-in session ends after this long without user activity
            (``$STUDYAPP_SESSION_IDLE_MINUTES``, default 30).
        ratescore_dir: local RaTEScore models (``$STUDYAPP_RATESCORE_DIR``, folders ``ner/`` and ``encoder/``) for
            template use in the analysis; ``None`` means ROUGE-L (see ``analysis.similarity``).
        show_api: show Gradio's "Use via API" page link (``$STUDYAPP_SHOW_API=1``); off by default, for
            readers and coordinators alike.
    """

    data_dir: Path = field(default_factory=lambda: DEFAULT_DATA_DIR)
    database_url: str = ""
    session_idle_minutes: float = field(default_factory=lambda: float(os.environ.get("STUDYAPP_SESSION_IDLE_MINUTES", 30)))
    ratescore_dir: Path | None = field(
        default_factory=lambda: Path(os.environ["STUDYAPP_RATESCORE_DIR"]) if os.environ.get("STUDYAPP_RATESCORE_DIR") else None
    )

    show_api: bool = field(default_factory=lambda: os.environ.get("STUDYAPP_SHOW_API", "") == "1")

    def __post_init__(self):
        if not self.database_url:
            url = os.environ.get("STUDYAPP_DATABASE_URL") or f"sqlite:///{Path(self.data_dir) / 'study.db'}"
            object.__setattr__(self, "database_url", url)
