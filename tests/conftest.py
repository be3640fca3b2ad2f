"""Shared fixtures: migrated databases on SQLite and (when configured) PostgreSQL.

PostgreSQL tests read ``TOUCHFLOW_TEST_POSTGRES_URL`` and skip with a reason
when it is unset; ``.ci/run`` sets it. Each test gets its own schema, so tests
never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from touchflow.store.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "TOUCHFLOW_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


requires_postgres = pytest.mark.skipif(
    postgres_url() is None, reason=f"{PG_ENV} is not set (.ci/run sets it)"
)


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, private schema."""
    base = postgres_url()
    if base is None:
        pytest.skip(f"{PG_ENV} is not set (.ci/run sets it)")
    schema = f"tf_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'touchflow.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each backend (the PostgreSQL one skips when not configured)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'touchflow.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()
