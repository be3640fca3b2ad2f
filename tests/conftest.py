"""Shared fixtures: migrated databases on SQLite and (when configured) PostgreSQL.

PostgreSQL tests read ``TOUCHFLOW_TEST_POSTGRES_URL`` and skip with a reason
when it is unset; ``.ci/run`` sets it.

The migrations run once per test session (per xdist worker), not once per
test: on SQLite into a template file that each test gets a copy of, on
PostgreSQL into one private schema that is emptied before each test
(``DELETE``, or ``TRUNCATE`` for big tables, of the tables that have rows;
every sequence back to its start).
Either way a test starts from the schema at head with no rows, and tests never
see each other's rows. ``db_from_empty`` still runs every migration on an empty
database, for the tests of the migrations themselves.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, create_engine, text
from sqlalchemy.exc import OperationalError

from touchflow.store.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "TOUCHFLOW_TEST_POSTGRES_URL"
PG_UNSET = f"{PG_ENV} is not set (.ci/run sets it)"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


requires_postgres = pytest.mark.skipif(postgres_url() is None, reason=PG_UNSET)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_admin() -> Engine:
    base = postgres_url()
    if base is None:
        pytest.skip(PG_UNSET)
    return create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))


def _new_schema(admin: Engine) -> tuple[str, str]:
    """Create a private schema; return its name and a URL whose search_path is that schema."""
    base = postgres_url()
    assert base is not None
    schema = f"tf_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options=-csearch_path%3D{schema}"


def _drop_schema(admin: Engine, schema: str) -> None:
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, private, empty schema (not migrated)."""
    admin = _pg_admin()
    schema, url = _new_schema(admin)
    try:
        yield url
    finally:
        _drop_schema(admin, schema)
        admin.dispose()


class MigratedSchema:
    """One schema migrated to head for the whole session; :meth:`reset` empties it again."""

    LOCK_TIMEOUT = "10s"
    # Up to this many rows a table is emptied by DELETE (a few ms); more, by TRUNCATE,
    # which costs tens of milliseconds (new files) whatever the size, and leaves no
    # dead rows behind for later tests to scan.
    DELETE_MAX = 1000

    def __init__(self, admin: Engine) -> None:
        self.admin = admin
        self.schema, self.url = _new_schema(admin)
        self.engine = make_engine(self.url)
        upgrade(self.engine)
        reflected = MetaData()
        reflected.reflect(bind=self.engine)
        # Referencing tables before the tables they reference: DELETE in this order
        # never leaves a row pointing at a deleted one.
        self.tables = [
            t.name for t in reversed(reflected.sorted_tables) if t.name != "alembic_version"
        ]
        q, cap = self._q, self.DELETE_MAX + 1
        # One round trip counts the rows of every table, up to DELETE_MAX + 1.
        self._counts = text(
            " UNION ALL ".join(
                f"SELECT '{t}', count(*) FROM (SELECT 1 FROM {q(t)} LIMIT {cap}) AS r"
                for t in self.tables
            )
        )
        with self.engine.connect() as conn:
            sequences = conn.execute(
                text(
                    "SELECT format('%I.%I', n.nspname, c.relname), s.seqstart"
                    " FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema"
                ),
                {"schema": self.schema},
            ).all()
            seeded = [t for t, n in conn.execute(self._counts) if n]
        # Every sequence, not only those of tables with rows: a sequence also moves
        # without leaving a row (a rolled-back insert).
        restarts = ", ".join(f"setval('{name}', {start}, false)" for name, start in sequences)
        self._restart = text(f"SELECT {restarts}") if sequences else None
        if seeded:  # a reset would drop them; teach reset() to put them back first
            raise RuntimeError(f"the migrations leave rows in {seeded}: reset() would drop them")

    def _q(self, table: str) -> str:
        return f'"{self.schema}"."{table}"'

    def reset(self) -> None:
        """Every table empty, every sequence at its start: as if just migrated."""
        try:
            self._reset()
        except OperationalError as exc:
            if "lock timeout" not in str(exc):
                raise
            # A connection an earlier test leaked still holds a lock in the schema.
            ended = self._end_lock_holders()
            warnings.warn(
                f"ended {ended} leaked connection(s) holding locks in {self.schema}", stacklevel=2
            )
            self._reset()

    def _reset(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = '{self.LOCK_TIMEOUT}'"))
            rows: dict[str, int] = {t: n for t, n in conn.execute(self._counts)}
            big = [t for t in self.tables if rows[t] > self.DELETE_MAX]
            if big:
                q = self._q
                conn.execute(text(f"TRUNCATE {', '.join(map(q, big))} CASCADE"))
            small = [t for t in self.tables if 0 < rows[t] <= self.DELETE_MAX]
            if small:  # one round trip, in self.tables' order
                conn.execute(text("; ".join(f"DELETE FROM {self._q(t)}" for t in small)))
            if self._restart is not None:
                conn.execute(self._restart)

    def _end_lock_holders(self) -> int:
        with self.admin.begin() as conn:
            # Waits (up to 10 s) until each one is gone and its locks with it (PostgreSQL 14+).
            wait = ", 10000" if conn.dialect.server_version_info >= (14,) else ""
            return len(
                conn.execute(
                    text(
                        f"SELECT pg_terminate_backend(l.pid{wait}) FROM pg_locks l"
                        " JOIN pg_class c ON c.oid = l.relation"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = :schema AND l.pid <> pg_backend_pid()"
                        " GROUP BY l.pid"
                    ),
                    {"schema": self.schema},
                ).all()
            )

    def close(self) -> None:
        self.engine.dispose()
        _drop_schema(self.admin, self.schema)


@pytest.fixture(scope="session")
def pg_migrated() -> Iterator[MigratedSchema]:
    """The session's PostgreSQL schema at head (skips when PostgreSQL is not configured)."""
    admin = _pg_admin()
    migrated = MigratedSchema(admin)
    try:
        yield migrated
    finally:
        migrated.close()
        admin.dispose()


@pytest.fixture
def pg_migrated_url(pg_migrated: MigratedSchema) -> str:
    """A PostgreSQL URL of a schema at head with no rows, for this test.

    Every test gets the same schema, emptied first: engines, threads and
    processes of one test may share it freely, tests run one after another.
    """
    pg_migrated.reset()
    return pg_migrated.url


# --------------------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, once per session (copy it, never open it)."""
    path = tmp_path_factory.mktemp("template") / "touchflow.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    # One self-contained file: fold the WAL back in. Every engine from make_engine
    # turns WAL on again when it connects, as it does on a new file.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    return path


@pytest.fixture
def migrated_sqlite(sqlite_template: Path) -> Callable[[Path], str]:
    """``migrated_sqlite(path)``: a copy of the migrated template at ``path``; its URL."""

    def make(path: Path) -> str:
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL of a file that does not exist yet (not migrated)."""
    return f"sqlite:///{tmp_path / 'touchflow.db'}"


# --------------------------------------------------------------------------- both


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: ``sqlite``, ``postgres`` (skips when not configured)."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty (not migrated) database URL on each backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'touchflow.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def migrated_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at head with no rows on each backend (SQLite: ``tmp_path / 'touchflow.db'``)."""
    if backend == "sqlite":
        return str(request.getfixturevalue("migrated_sqlite")(tmp_path / "touchflow.db"))
    return str(request.getfixturevalue("pg_migrated_url"))


@pytest.fixture
def db(migrated_db_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    engine = make_engine(migrated_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_from_empty(db_url: str) -> Iterator[Engine]:
    """An engine on each backend, migrated here from an empty database by every migration."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()
