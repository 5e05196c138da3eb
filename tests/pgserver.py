"""A throwaway PostgreSQL server (Debian ``postgresql``) on 127.0.0.1 in a temp folder, for tests and benches."""

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.browser import free_port


@dataclass
class PostgreSQLServer:
    """A running cluster: ``url`` is its SQLAlchemy URL; :meth:`stop` and :meth:`start` take it down and bring it
    back on the same port and data (an outage, as a database restart or crash would cause)."""

    url: str
    bin_dir: Path
    data: Path
    options: str
    as_postgres: list[str]

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args], check=True,
                       capture_output=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections (``pg_ctl start -w``).

        Raises:
            subprocess.CalledProcessError: it did not start.
        """
        self._pg_ctl("-o", self.options, "-w", "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        """Stop the server now, ending every connection (``pg_ctl stop -m fast``)."""
        self._pg_ctl("-m", "fast", "-w", "stop")


@contextmanager
def postgresql_server() -> Iterator[PostgreSQLServer]:
    """Start a new cluster (trust auth, UTF-8) on a free loopback port, run as ``postgres`` when we are root;
    yields the running :class:`PostgreSQLServer` and removes everything afterwards.

    Raises:
        AssertionError: PostgreSQL is not installed (``apt-get install postgresql``; .ci/run does).
        subprocess.CalledProcessError: initdb or pg_ctl failed.
    """
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert binaries, "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)"
    bin_dir = Path(binaries[-1])
    root = Path(tempfile.mkdtemp(prefix="studyapp-pg-"))  # outside pytest's root-only folder
    data = root / "data"
    as_postgres = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
        port = free_port()
        server = PostgreSQLServer(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", bin_dir, data,
                                  f"-p {port} -c listen_addresses=127.0.0.1 -k {data}", as_postgres)
        server.start()
        try:
            yield server
        finally:
            subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def throwaway_postgresql() -> Iterator[str]:
    """:func:`postgresql_server`, yielding only its SQLAlchemy URL."""
    with postgresql_server() as server:
        yield server.url
