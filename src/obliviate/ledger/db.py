"""Open the ledger database: resolve the URL, set up every connection, bring the schema up to date.

    from obliviate.ledger import open_ledger
    ledger = open_ledger()                                   # $OBLIVIATE_DB, else ./obliviate-ledger.db
    ledger = open_ledger("postgresql+psycopg://ops@db.internal/ledger")
    with ledger.begin() as session:                          # one transaction: commit, or roll back on error
        ...

SQLite (the default) runs in WAL mode with a busy timeout, and every transaction starts with
`BEGIN IMMEDIATE`: it takes the single writer lock up front, so two processes never interleave
writes (a read-then-write, such as extending the audit chain, cannot race). PostgreSQL is used for
a `postgresql+psycopg://` URL (`postgresql://` means the same here); its writers serialize on
advisory locks where they must (`audit.append_event`, schema upgrades).

Opening upgrades the schema with the Alembic migrations shipped in `migrations/`. A database
stamped with a revision this obliviate does not know was written by a newer one: it is refused.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from obliviate.errors import ObliviateError

ENV_VAR = "OBLIVIATE_DB"
DEFAULT_PATH = "obliviate-ledger.db"
VERSION_TABLE = "obliviate_ledger_version"  # not alembic_version: the database may be shared with other apps
BUSY_TIMEOUT_MS = 30_000
SCHEMA_LOCK = 0x6F626C31  # PostgreSQL advisory lock keys ("obl1", "obl2")
CHAIN_LOCK = 0x6F626C32
MIGRATIONS = Path(__file__).parent / "migrations"
_EXPECTED = "expected a SQLite path, sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/dbname"


@dataclass
class Ledger:
    """An open ledger: the engine, a session factory, and the URL as shown to users (no password)."""

    engine: Engine
    sessions: sessionmaker[Session]
    url: str

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    def begin(self) -> AbstractContextManager[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises."""
        return self.sessions.begin()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _hide_password(raw: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", raw)


def resolve_url(url: str | None = None) -> URL:
    """The database URL: `url`, else $OBLIVIATE_DB, else ./obliviate-ledger.db; a bare path means SQLite."""
    raw = (url if url is not None else os.environ.get(ENV_VAR) or DEFAULT_PATH).strip()
    if not raw:
        raise ObliviateError(f"empty database URL; {_EXPECTED}")
    if "://" not in raw:  # a file path
        return URL.create("sqlite", database=str(Path(raw).expanduser().absolute()))
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ObliviateError(f"malformed database URL {_hide_password(raw)!r}; {_EXPECTED}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "postgresql" and parsed.drivername in ("postgresql", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver == "pysqlite":
        return parsed
    shown = parsed.render_as_string(hide_password=True)
    raise ObliviateError(f"unsupported database URL {shown!r} (driver {parsed.drivername}); {_EXPECTED}")


def _wal(cursor) -> None:
    """Switch the file to WAL (it stays so). Switching takes an exclusive lock without waiting for the busy
    timeout, so when two processes open a fresh file at once, the loser retries until the timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN from the driver: `_sqlite_begin` issues it
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA secure_delete = ON")  # a purged payload is overwritten in the file, not just unlinked
    cursor.close()


def _sqlite_begin(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, connect_args={"connect_timeout": 10})


@lru_cache(maxsize=1)
def _scripts():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config, ScriptDirectory.from_config(config)


def schema_head() -> str:
    """The newest schema revision this obliviate ships."""
    return _scripts()[1].get_current_head()


def _upgrade(engine: Engine, shown: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config, scripts = _scripts()
    head = scripts.get_current_head()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # two processes opening one fresh database: one migrates
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if current == head:
            return
        if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
            raise ObliviateError(f"ledger database {shown} has schema revision {current!r}, newer than this "
                                 f"obliviate knows (newest: {head!r}); upgrade obliviate "
                                 "(pip install -U obliviate) to open it")
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        finally:
            config.attributes.pop("connection", None)


def _reason(err: DBAPIError) -> str:
    lines = str(err.orig).strip().splitlines() or [type(err.orig).__name__]
    return lines[0].rstrip(".")


def open_ledger(url: str | None = None, *, create: bool = True) -> Ledger:
    """Connect to the ledger at `url` (default $OBLIVIATE_DB, else ./obliviate-ledger.db) and upgrade its schema.

    create=False refuses a SQLite file that does not exist yet (commands that only read or change
    existing requests: a mistyped path must not answer with a new, empty ledger). Raises
    ObliviateError for a malformed or unsupported URL, an unreachable database (the message names
    the URL without its password) and a database written by a newer obliviate.
    """
    parsed = resolve_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if not create and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            raise ObliviateError(f"ledger database {shown} does not exist; pass the ledger's --db (or set "
                                 "OBLIVIATE_DB), or submit a request to create it (obliviate request submit FILE)")
    engine = _engine(parsed)
    try:
        _upgrade(engine, shown)
    except DBAPIError as err:
        engine.dispose()
        if parsed.get_backend_name() == "sqlite":
            fix = "check that its folder exists and is writable, or pass another --db (or set OBLIVIATE_DB)"
        else:
            fix = ("start the server, or fix the host, port, user, password or database name in --db "
                   "(or OBLIVIATE_DB)")
        raise ObliviateError(f"cannot open the ledger database {shown}: {_reason(err)}; {fix}") from None
    except BaseException:
        engine.dispose()
        raise
    return Ledger(engine, sessionmaker(engine, expire_on_commit=False), shown)
