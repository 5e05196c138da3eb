"""The app as its own process (``python app.py --serve`` on a free loopback port), for tests that kill the server
and for the load bench: start, wait until it answers, SIGKILL, start again on the same data."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.browser import free_port

ROOT = Path(__file__).resolve().parents[1]


class AppProcess:
    """``python app.py --serve --no-demo`` on ``database_url``, on 127.0.0.1 at a port chosen once (kept across
    restarts so a browser can reconnect); server output goes to ``log_path``.

    Args:
        extra_args: more command-line options (before ``--serve``), e.g. ``["--session-idle-minutes", "1"]``.
        env: more environment variables of the server process (e.g. a test hook's).
    """

    def __init__(self, data_dir: Path, database_url: str, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180.0) -> None:
        """Start the server and wait until ``/config`` answers (401 before sign-in counts as up).

        Raises:
            RuntimeError: the process exited or did not answer within ``timeout_s`` (the log's tail is included).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        command = [sys.executable, str(ROOT / "app.py"), "--data-dir", str(self.data_dir), "--database",
                   self.database_url, *self.extra_args, "--serve", "--no-demo", "--port", str(self.port)]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/config", timeout=2).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the app did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, n_chars: int = 4000) -> str:
        """The end of the server's output."""
        return self.log_path.read_text(errors="replace")[-n_chars:] if self.log_path.exists() else ""
