"""Which database errors pass on a second try, and whether a database has the schema."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from touchflow.store.db import (
    MIGRATIONS_DIR,
    code_revisions,
    make_engine,
    schema_problem,
    transient_error,
    upgrade,
)


def _raised(engine, sql: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text(sql))
    return caught.value


def _wrapped(orig: Exception) -> DBAPIError:
    return OperationalError("SELECT 1", {}, orig)


# -- transient_error --------------------------------------------------------------


def test_a_missing_table_is_not_worth_a_retry(db_url):
    engine = make_engine(db_url)
    try:
        assert not transient_error(_raised(engine, "SELECT * FROM touches"))
    finally:
        engine.dispose()


def test_sqlite_database_is_locked_passes(tmp_path: Path):
    path = tmp_path / "busy.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (x)"))
        conn.commit()
        conn.exec_driver_sql("PRAGMA busy_timeout = 0")
        with closing(sqlite3.connect(path)) as holder:
            holder.execute("BEGIN IMMEDIATE")  # another process is writing
            with pytest.raises(OperationalError) as caught:
                conn.execute(text("INSERT INTO t VALUES (1)"))
            holder.rollback()
    engine.dispose()
    assert "database is locked" in str(caught.value)
    assert transient_error(caught.value)


@pytest.mark.parametrize(
    "orig, passes",
    [
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.ConnectionFailure("connection lost"), True),
        (psycopg.errors.UndefinedTable('relation "touches" does not exist'), False),
        (psycopg.errors.UndefinedColumn('column "x" does not exist'), False),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.OperationalError("connection failed: Connection refused"), True),
        (psycopg.OperationalError('connection failed: FATAL:  database "x" does not exist'), False),
        (psycopg.OperationalError("connection failed: FATAL:  the database system is up"), False),
        (psycopg.OperationalError("connection failed: FATAL:  the system is starting up"), True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_postgres_errors_that_pass_and_those_that_do_not(orig, passes):
    assert transient_error(_wrapped(orig)) is passes


def test_a_lost_connection_passes():
    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    lost.connection_invalidated = True
    assert transient_error(lost)


def test_errors_of_other_kinds_do_not_pass():
    assert not transient_error(ValueError("a bug"))
    assert not transient_error(ProgrammingError("SELECT", {}, sqlite3.ProgrammingError("x")))


# -- schema_problem ---------------------------------------------------------------


def test_code_revisions_agree_with_alembic():
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    head, known = code_revisions()
    assert head == scripts.get_current_head()
    assert known == {s.revision for s in scripts.walk_revisions()}


def test_a_sqlite_file_that_does_not_exist_is_not_created(tmp_path: Path):
    path = tmp_path / "touchflow.db"
    engine = make_engine(f"sqlite:///{path}")
    problem = schema_problem(engine)
    assert problem == (
        f"the SQLite file {path} does not exist: run `touchflow db upgrade` to create it"
    )
    assert not path.exists()


def test_a_database_without_the_schema_is_named(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:  # the file (or schema) exists, the tables do not
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    try:
        problem = schema_problem(engine)
    finally:
        engine.dispose()
    assert problem is not None
    assert problem.startswith("the database has no touchflow schema yet")


def test_an_older_schema_asks_for_an_upgrade_and_the_head_passes(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0002")
        assert schema_problem(engine) == (
            "the database schema is older than this touchflow: run `touchflow db upgrade`"
        )
        upgrade(engine)
        assert schema_problem(engine) is None
        with engine.begin() as conn:  # a newer touchflow migrated it: not refused
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        assert schema_problem(engine) is None
    finally:
        engine.dispose()
