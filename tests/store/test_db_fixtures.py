"""The database fixtures (tests/conftest.py) give every test the schema at head and no rows.

They migrate once per session and copy (SQLite) or empty (PostgreSQL) per test;
these tests hold them to looking exactly like a fresh migration.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, insert, inspect, select, text

from tests.support.harness import Harness, make_cadence, prospect
from touchflow.store.db import MIGRATIONS_DIR, make_engine
from touchflow.store.schema import suppressions

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MON = NOW


def _suppress(engine: Engine, value: str) -> int:
    with engine.begin() as conn:
        row = conn.execute(
            insert(suppressions)
            .values(kind="email", value=value, reason="test", source="test", created_at=NOW)
            .returning(suppressions.c.id)
        )
        return int(row.scalar_one())


def _head() -> str:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_starts_at_head_with_no_rows_and_fresh_ids(db: Engine, run: int):
    """Run twice: the second run sees nothing of the first one's row, and gets id 1 again."""
    with db.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == _head()
    assert set(_row_counts(db).values()) == {0}
    assert _suppress(db, f"run{run}@x.example") == 1
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(suppressions)).scalar_one() == 1


@pytest.mark.postgres
def test_pg_reset_restarts_a_sequence_that_moved_without_a_row(pg_migrated, pg_migrated_url):
    engine = make_engine(pg_migrated_url)
    try:
        with engine.connect() as conn, conn.begin() as tx:
            conn.execute(
                insert(suppressions).values(
                    kind="email", value="gone@x.example", reason="t", source="t", created_at=NOW
                )
            )
            tx.rollback()  # the sequence moved, no row is left
        pg_migrated.reset()
        assert _suppress(engine, "kept@x.example") == 1
    finally:
        engine.dispose()


def _row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            for table in inspect(conn).get_table_names()
            if table != "alembic_version"
        }


@pytest.mark.postgres
@pytest.mark.parametrize("delete_max", [1000, 1], ids=["delete", "truncate"])
def test_pg_reset_empties_tables_that_reference_each_other(
    pg_migrated, pg_migrated_url, tmp_path, monkeypatch: pytest.MonkeyPatch, delete_max: int
):
    monkeypatch.setattr(pg_migrated, "DELETE_MAX", delete_max)
    engine = make_engine(pg_migrated_url)
    try:
        h = Harness(engine, make_cadence(tmp_path))
        h.add([prospect(f"p{i}@x.example") for i in range(3)], SAT)
        h.tick(MON)  # touches -> enrollments -> prospects, cadence_versions
        counts = _row_counts(engine)
        assert counts["touches"] == counts["enrollments"] == counts["prospects"] == 3
        pg_migrated.reset()
        assert set(_row_counts(engine).values()) == {0}
        assert _suppress(engine, "new@x.example") == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_pg_reset_ends_a_leaked_connection_that_holds_a_lock(
    pg_migrated, pg_migrated_url, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(pg_migrated, "LOCK_TIMEOUT", "200ms")
    engine = make_engine(pg_migrated_url)
    try:
        _suppress(engine, "a@x.example")
        leaked = engine.connect()
        leaked.begin()
        leaked.execute(text("SELECT * FROM suppressions FOR UPDATE"))  # blocks the DELETE
        with pytest.warns(UserWarning, match="leaked connection"):
            pg_migrated.reset()
        assert set(_row_counts(engine).values()) == {0}
        leaked.invalidate()
    finally:
        engine.dispose()
