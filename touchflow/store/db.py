"""Engine creation and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, **kw: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain URLs would ask for psycopg2.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
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
