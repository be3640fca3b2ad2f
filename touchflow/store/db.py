"""Engine creation and migrations for SQLite (default) and PostgreSQL.

Also what a person is told when the database URL or the database itself is
wrong (:func:`url_problem`, :func:`database_problem`, :func:`schema_problem`):
one line each, without the URL (the caller names the setting and shows the URL
with its password masked); and which errors pass if the work is tried again
(:func:`transient_error`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.exc import TimeoutError as PoolTimeout

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: What to run when the schema is missing or behind the code.
UPGRADE_HINT = "run `touchflow db upgrade`"
_URL_FORMS = "sqlite:///path/to/file.db or postgresql://user:password@host:5432/dbname"


def driver_url(url: str) -> str:
    """``url`` with the driver touchflow ships: psycopg 3 for PostgreSQL.

    Plain ``postgresql://`` would ask SQLAlchemy for psycopg2, and
    ``postgres://`` (Heroku's and many hosts' spelling) for no dialect at all.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def make_engine(url: str, **kw: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys."""
    url = driver_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers (status, API) run while a tick writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        _serialize_transactions(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kw)


def _serialize_transactions(engine: Engine) -> None:
    """One transaction at a time per process on SQLite.

    SQLite has one writer; threads that collide wait in its busy handler,
    which sleeps in steps of up to 100 ms. A lock taken at BEGIN and released
    at COMMIT/ROLLBACK lets the next thread in the moment the previous one is
    done (the API serves concurrent requests from a thread pool). Reentrant,
    so a thread may open a second connection while it holds one. Other
    processes still coordinate through SQLite's own locking.
    """
    lock = threading.RLock()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        lock.acquire()
        conn.info["tf_locked"] = True

    def _end(conn: Any) -> None:
        if conn.info.pop("tf_locked", False):
            lock.release()

    event.listen(engine, "commit", _end)
    event.listen(engine, "rollback", _end)


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds SQLite's write lock from its first statement on.

    For a transaction that reads what it is about to change (the tick's claim:
    due enrollments, send counts) when another process may change it too. The
    driver opens SQLite transactions lazily, at the first write, so the reads
    before it see whatever another process commits meanwhile; ``BEGIN
    IMMEDIATE`` takes the single writer's lock first (waiting up to the busy
    timeout) and the reads are then this transaction's alone. Readers are not
    blocked (WAL). On PostgreSQL a plain transaction: there, row locks
    (``FOR UPDATE SKIP LOCKED``) and advisory locks serialize what must be.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be touchflow's database, in one line; None when it can be tried.

    Checks what can be known without connecting: the URL parses, its scheme is
    SQLite or PostgreSQL with an installed driver, and a SQLite file's folder
    exists and is writable (SQLite would create the file there).
    """
    try:
        parsed = make_url(driver_url(url.strip()))
    except ArgumentError:
        return f"not a database URL; expected {_URL_FORMS}"
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        return f"unknown database scheme {parsed.drivername!r}; expected {_URL_FORMS}"
    try:
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        return f"no driver for {parsed.drivername!r} ({exc}); use {_URL_FORMS}"
    if getattr(dialect, "is_async", False):
        return f"{parsed.drivername!r} is an asyncio driver; use {_URL_FORMS}"
    if backend == "sqlite":
        return _sqlite_file_problem(parsed)
    return None


def _sqlite_file_problem(url: URL) -> str | None:
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file:") or url.query.get("mode") == "memory":
        return None
    path = Path(name).expanduser()
    folder = path.parent
    if not folder.is_dir():
        return f"the folder of the SQLite file, {folder}, does not exist"
    if path.exists():
        if path.is_dir():
            return f"{path} is a folder, not a SQLite file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"cannot write the SQLite file {path} (permissions)"
    elif not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create the SQLite file {path}: no write permission in {folder}"
    return None


# PostgreSQL SQLSTATE codes worth their own sentence.
_UNDEFINED_TABLE, _UNDEFINED_COLUMN = "42P01", "42703"
_NO_DATABASE, _BAD_PASSWORD, _NO_ROLE = "3D000", "28P01", "28000"


def database_problem(exc: BaseException, url: str) -> str | None:
    """A one-line account of a database error for a person; None when it is not one of these.

    Covers a database without the schema (or behind the code), one that does
    not exist, a server that does not answer, refused credentials and a SQLite
    file that cannot be opened. Anything else (a bug, a constraint) is left to
    the caller to raise as it is.
    """
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    message = str(orig).strip()
    first = message.splitlines()[0] if message else type(orig).__name__
    code = getattr(orig, "sqlstate", None)
    try:
        parsed: URL | None = make_url(driver_url(url))
    except ArgumentError:
        parsed = None
    if code == _UNDEFINED_TABLE or "no such table" in message:
        # No table at all before the first upgrade; a missing one after a pull
        # that added a migration.
        return f"the database has no touchflow schema yet (or an older one): {UPGRADE_HINT}"
    if code == _UNDEFINED_COLUMN or "no such column" in message or "has no column" in message:
        return f"the database schema is older than this touchflow: {UPGRADE_HINT}"
    if code == _NO_DATABASE or ("database" in message and "does not exist" in message):
        name = parsed.database if parsed is not None else "?"
        return f"database {name!r} does not exist on the server: create it (createdb {name})"
    if code in (_BAD_PASSWORD, _NO_ROLE) or "authentication failed" in message:
        return f"the server refused the user and password: {first}"
    if "unable to open database file" in message:
        return "cannot open the SQLite file: check the path and its folder's permissions"
    if "readonly database" in message:
        return "the SQLite file is read-only: check its permissions"
    if parsed is not None and parsed.get_backend_name() == "postgresql" and code is None:
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
        return f"cannot connect to PostgreSQL at {where}: {_connection_reason(message)}"
    return None


def _connection_reason(message: str) -> str:
    """psycopg's connection failure without its repeated preamble."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    text = lines[0] if lines else "connection failed"
    # "connection failed: connection to server at "h", port 1 failed: Connection refused"
    return text.rsplit("failed: ", 1)[-1] if "failed: " in text else text


# -- errors that pass ---------------------------------------------------------------

# SQLSTATE codes a second try can get past: serialization failure, deadlock,
# lock not available (lock_timeout), too many connections, and the server
# shutting down, restarting or not yet accepting connections.
_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03"})
_CONNECTION_CLASS = "08"  # connection exception: lost, refused, failed


def transient_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that can pass if the work is tried again.

    Yes: a lost or refused connection, a serialization failure, a deadlock, a
    lock or pool timeout, SQLite's "database is locked". No: everything that
    stays wrong until a person acts (no such table, a missing column, a bad
    password, a constraint, a bug in a statement).
    """
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None)
    if code is not None:
        return code in _TRANSIENT_CODES or code.startswith(_CONNECTION_CLASS)
    message = str(orig)
    if "is locked" in message:  # SQLITE_BUSY "database is locked", SQLITE_LOCKED "table is locked"
        return True
    kind = type(orig)
    if not (kind.__module__.startswith("psycopg") and kind.__name__ == "OperationalError"):
        return False
    # psycopg reports a failed connection without a SQLSTATE. No answer at all
    # (refused, timed out, reset) can pass; a server that answered FATAL
    # refused for good (no such database or role, a wrong password) unless
    # it is starting, stopping or full.
    if "FATAL:" not in message:
        return True
    return any(reason in message for reason in _PASSING_FATAL)


_PASSING_FATAL = (
    "starting up",
    "shutting down",
    "in recovery mode",
    "too many clients",
    "remaining connection slots",
    "administrator command",
)


# -- is the schema there ------------------------------------------------------------

_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([^'\"\s]+)", re.MULTILINE)


@lru_cache(maxsize=1)
def code_revisions() -> tuple[str, frozenset[str]]:
    """This code's head revision and every revision it knows (read from the version files).

    Read with a regular expression, not Alembic's script loader: a flow checks
    the schema at every start, and importing Alembic's loader costs ~0.2 s.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text()))
        if "revision" in found:
            revisions.add(found["revision"])
            if found.get("down_revision") not in (None, "None"):
                parents.add(found["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads, expected 1: {sorted(heads)}")
    return heads.pop(), frozenset(revisions)


def schema_problem(engine: Engine) -> str | None:
    """Why this database cannot be worked on yet, in one line; None when its schema is current.

    A SQLite file that does not exist is reported without connecting (connecting
    would create an empty one). A schema newer than this code is not a problem
    here: the migrations only add, and refusing would stop every worker not yet
    updated during a deploy.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        name = url.database or ""
        in_memory = name in ("", ":memory:") or name.startswith("file:")
        if not in_memory and not Path(name).expanduser().exists():
            path = Path(name).expanduser().resolve()
            return f"the SQLite file {path} does not exist: {UPGRADE_HINT} to create it"
    try:
        with engine.connect() as conn:
            found: set[str] = set(
                conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
    except DBAPIError as exc:
        problem = database_problem(exc, url.render_as_string(hide_password=False))
        if problem is None:
            raise
        return problem
    head, known = code_revisions()
    if head in found or found - known:
        return None
    return f"the database schema is older than this touchflow: {UPGRADE_HINT}"
