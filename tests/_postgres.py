"""A throw-away PostgreSQL server for the tests, and the fixtures that hand out its databases.

``postgres_server`` (session scope) makes a cluster in a temporary folder with ``initdb``, starts it
on a free TCP port of 127.0.0.1 (unix socket in the same folder) with trust authentication, and
stops it (``pg_ctl stop -m fast``) and removes the folder at the end of the session, whether the
tests passed or not. ``postgres_url`` (function scope) creates a fresh database on it for each
test. PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user (through
``runuser``, else ``su``); as anyone else, as that user. The fixtures skip, saying why, when the
server binaries or the Python driver (``pip install -e '.[dev,postgres]'``) are absent.

Server binaries are looked up in ``$RECSAMPLING_PG_BIN``, then next to ``pg_ctl`` on the PATH,
then in ``/usr/lib/postgresql/<version>/bin`` (newest first).

Use it from a test module with ``from _postgres import postgres_server, postgres_url  # noqa: F401``.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from itertools import count
from pathlib import Path

import pytest

_TOOLS = ("initdb", "pg_ctl", "postgres")
_SUPERUSER = "postgres"  # the database role initdb makes; trust auth, no password


def _bin_dir() -> Path | None:
    candidates = []
    if os.environ.get("RECSAMPLING_PG_BIN"):
        candidates.append(Path(os.environ["RECSAMPLING_PG_BIN"]))
    if shutil.which("pg_ctl"):
        candidates.append(Path(shutil.which("pg_ctl")).resolve().parent)
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for d in candidates:
        if all((d / tool).is_file() for tool in _TOOLS):
            return d
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in ``folder``, run as the OS user ``os_user`` (None: this process's)."""

    def __init__(self, bin_dir: Path, folder: Path, os_user: str | None):
        self.bin_dir, self.folder, self.os_user = bin_dir, folder, os_user
        self.data = folder / "data"
        self.port = _free_port()
        self._names = count()

    def _as_server_user(self, *cmd) -> subprocess.CompletedProcess:
        cmd = [str(c) for c in cmd]
        if self.os_user is not None:
            if shutil.which("runuser"):
                cmd = ["runuser", "-u", self.os_user, "--", *cmd]
            else:
                cmd = ["su", self.os_user, "-s", "/bin/sh", "-c", shlex.join(cmd)]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)

    def _check(self, what: str, done: subprocess.CompletedProcess) -> None:
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"PostgreSQL {what} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def start(self) -> None:
        self._check("initdb", self._as_server_user(self.bin_dir / "initdb", "-D", self.data, "-U", _SUPERUSER,
                                                   "-A", "trust", "-E", "UTF8", "--no-sync"))
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._check("start", self._as_server_user(self.bin_dir / "pg_ctl", "-D", self.data, "-l",
                                                  self.folder / "server.log", "-o", options, "-w", "-t", "30", "start"))

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_server_user(self.bin_dir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def create_database(self) -> str:
        """A new empty database; its ``postgresql://`` URL."""
        name = f"test_{next(self._names)}"
        self._sql(f"CREATE DATABASE {name}")
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def _sql(self, statement: str) -> None:
        if importlib.util.find_spec("psycopg") is not None:
            import psycopg

            with psycopg.connect(host="127.0.0.1", port=self.port, user=_SUPERUSER, dbname="postgres",
                                 autocommit=True) as conn:
                conn.execute(statement)
        else:
            import psycopg2

            conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=_SUPERUSER, dbname="postgres")
            conn.autocommit = True
            try:
                conn.cursor().execute(statement)
            finally:
                conn.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server for the session (skips when its binaries or a driver are absent)."""
    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        pytest.skip("no PostgreSQL driver: pip install -e '.[dev,postgres]'")
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install postgresql "
                    "or set RECSAMPLING_PG_BIN to their folder")
    os_user = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        os_user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="recsampling-pg-"))
    try:
        if os_user is not None:
            shutil.chown(folder, user=os_user)
        server = PostgresServer(bin_dir, folder, os_user)
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """``postgresql://`` URL of a fresh database on the session's server."""
    return postgres_server.create_database()
