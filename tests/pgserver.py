"""A throwaway PostgreSQL server (Debian ``postgresql``) on 127.0.0.1 in a temp folder, for tests and benches."""

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.browser import free_port


@contextmanager
def throwaway_postgresql() -> Iterator[str]:
    """Start a new cluster (trust auth, UTF-8) on a free loopback port, run as ``postgres`` when we are root;
    yields its SQLAlchemy URL and removes everything afterwards.

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
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data}"
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
                        str(data / "server.log"), "start"], check=True, capture_output=True)
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
