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
        llm_judge_url: OpenAI-compatible base URL of an LLM discrepancy judge for the app's analysis
            (``$STUDYAPP_LLM_JUDGE_URL``, e.g. ``http://127.0.0.1:8000/v1``); ``None`` means the offline judge.
            The API key, if any, comes from ``$OPENAI_API_KEY``; answers are cached in ``{data_dir}/llm-cache``.
        llm_judge_model: model name sent to that endpoint (``$STUDYAPP_LLM_JUDGE_MODEL``, default ``gpt-4o``).
        show_api: show Gradio's "Use via API" page link (``$STUDYAPP_SHOW_API=1``); off by default, for
            readers and coordinators alike.
        signin_lockout_failures: failed sign-ins after which an account is locked for a while
            (``$STUDYAPP_SIGNIN_LOCKOUT_FAILURES``, default 10; a client address gets 5 times as many); see
            ``studyapp.web.throttle``.
        signin_lockout_minutes: how long such a lockout lasts (``$STUDYAPP_SIGNIN_LOCKOUT_MINUTES``, default 15).
        drain_seconds: on SIGTERM or SIGINT, the longest wait for saves in progress before the server exits
            (``$STUDYAPP_DRAIN_SECONDS``, default 20).
        frame_store_mb: size limit, in MiB, of the decoded frames kept on disk in ``{data_dir}/frames``
            (``$STUDYAPP_FRAME_STORE_MB``, default 4096; ``studyapp.dicom.frame_store``): about 0.5 MiB per
            512 x 512 CT slice, 7.5 MiB for a 1955 x 1841 radiograph.
    """

    data_dir: Path = field(default_factory=lambda: DEFAULT_DATA_DIR)
    database_url: str = ""
    session_idle_minutes: float = field(default_factory=lambda: float(os.environ.get("STUDYAPP_SESSION_IDLE_MINUTES", 30)))
    ratescore_dir: Path | None = field(
        default_factory=lambda: Path(os.environ["STUDYAPP_RATESCORE_DIR"]) if os.environ.get("STUDYAPP_RATESCORE_DIR") else None
    )
    llm_judge_url: str | None = field(default_factory=lambda: os.environ.get("STUDYAPP_LLM_JUDGE_URL") or None)
    llm_judge_model: str = field(default_factory=lambda: os.environ.get("STUDYAPP_LLM_JUDGE_MODEL") or "gpt-4o")

    show_api: bool = field(default_factory=lambda: os.environ.get("STUDYAPP_SHOW_API", "") == "1")
    signin_lockout_failures: int = field(
        default_factory=lambda: int(os.environ.get("STUDYAPP_SIGNIN_LOCKOUT_FAILURES", 10)))
    signin_lockout_minutes: float = field(
        default_factory=lambda: float(os.environ.get("STUDYAPP_SIGNIN_LOCKOUT_MINUTES", 15)))
    drain_seconds: float = field(default_factory=lambda: float(os.environ.get("STUDYAPP_DRAIN_SECONDS", 20)))
    frame_store_mb: float = field(default_factory=lambda: float(os.environ.get("STUDYAPP_FRAME_STORE_MB", 4096)))

    def __post_init__(self):
        if not self.database_url:
            url = os.environ.get("STUDYAPP_DATABASE_URL") or f"sqlite:///{Path(self.data_dir) / 'study.db'}"
            object.__setattr__(self, "database_url", url)
