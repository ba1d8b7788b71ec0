"""A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl start` in a temporary directory,
listening on a unix socket in that directory only (no TCP port), stopped at teardown.

    from pg_server import pg_server          # a session-scoped pytest fixture
    def test_x(pg_server):
        url = pg_server.fresh_url()          # a new schema: postgresql+psycopg://obliviate@/ledger_1?host=...
        url = pg_server.create_database()    # a new database: postgresql+psycopg://obliviate@/ledger_2?host=...

The binaries come from PATH or /usr/lib/postgresql/<version>/bin (Debian's `postgresql` package).
Without them the tests that use the fixture skip, unless OBLIVIATE_REQUIRE_POSTGRES=1 (CI), where
they fail. PostgreSQL refuses to run as root, so under root the server runs as the `postgres`
user (or `nobody`), with the directory handed to it.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

SUPERUSER = "obliviate"


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, else the newest /usr/lib/postgresql/*/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).parent
    def version(path: str) -> int:
        m = re.search(r"/postgresql/(\d+)/", path)
        return int(m.group(1)) if m else 0
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    return Path(found[-1]).parent if found else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


class PostgresServer:
    """One server in its own directory; `stop` is safe to call more than once."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.user = _unprivileged_user()
        # Not under pytest's tmp dirs: they are 0700 root-owned, which the server user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="obliviate-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._names = itertools.count(1)
        self.running = False
        self._shared: str | None = None
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        as_user = {} if self.user is None else {"user": self.user.pw_uid, "group": self.user.pw_gid,
                                                "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.root, env=env, capture_output=True,
                                text=True, timeout=120, **as_user)
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{log}")
        return result

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--no-locale", "-E", "UTF8",
                  "--no-sync")
        options = (f"-c listen_addresses='' -k {self.root} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=50")
        self.running = True  # from here on, stop() must run even if start fails half-way
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options)

    def stop(self) -> None:
        if self.running:
            self.running = False
            result = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", check=False)
            pidfile = self.data / "postmaster.pid"
            if result.returncode != 0 and pidfile.exists():  # pg_ctl could not stop it: end it by its pid
                try:
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, user: str = SUPERUSER, schema: str | None = None) -> str:
        options = f"&options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql+psycopg://{user}@/{database}?host={self.root}{options}"

    def _admin(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(host=str(self.root), dbname=database, user=SUPERUSER, autocommit=True)

    def _create(self) -> str:
        name = f"ledger_{next(self._names)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def create_database(self) -> str:
        """A fresh, empty database on this server; returns its SQLAlchemy URL."""
        return self.url(self._create())

    def fresh_url(self) -> str:
        """A fresh, empty schema in one shared database (much faster to make than a database), as the
        first entry of the connection's search_path; returns its SQLAlchemy URL."""
        if not self._shared:
            self._shared = self._create()
        name = f"t{next(self._names)}"
        with self._admin(self._shared) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return self.url(self._shared, schema=name)


@pytest.fixture(scope="session")
def pg_server():
    bindir = find_bindir()
    if bindir is None:
        reason = ("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                  "install Debian's postgresql package to run the PostgreSQL half of the ledger tests")
        if os.environ.get("OBLIVIATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (OBLIVIATE_REQUIRE_POSTGRES=1 makes this an error)")
        pytest.skip(reason)
    server = PostgresServer(bindir)
    atexit.register(server.stop)  # also if pytest exits before running fixture finalizers

    def interrupt(signum, frame):  # SIGTERM (a CI timeout, kill): tear down like Ctrl-C, stopping the server
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A ledger URL: a SQLite file in tmp_path, or a fresh schema on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_server").fresh_url()
