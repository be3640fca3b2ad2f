"""Statements built once, for the per-request hot paths (``POST /leads``, the CRM push).

Building a SQLAlchemy Core statement costs more than executing it: measured on
PostgreSQL, a two-column select by email took 0.31 ms of CPU when built per call
and 0.09 ms when built once with :func:`~sqlalchemy.bindparam` (the raw driver:
0.03 ms). A lead runs about 25 statements, so the hot ones are built at import
time, with ``bindparam(..., expanding=True)`` for ``IN`` lists.

Upserts (``ON CONFLICT``) differ per dialect: :func:`per_dialect` builds such a
statement once per dialect, on first use; :func:`dialect_insert` builds one on
each call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Connection, String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

#: ``insert(table)`` of one dialect: supports ``on_conflict_do_nothing`` / ``_do_update``.
Insert = Callable[[Any], Any]


def insert_for(conn: Connection) -> Insert:
    """The ``insert`` of ``conn``'s dialect (PostgreSQL's, else SQLite's), with ``ON CONFLICT``."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def dialect_insert(conn: Connection, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` on SQLite and PostgreSQL."""
    return insert_for(conn)(table)


def per_dialect(build: Callable[[Insert], T]) -> Callable[[Connection], T]:
    """Decorate ``build(insert)`` so that ``stmt(conn)`` returns it built once per dialect.

    ``insert`` is PostgreSQL's or SQLite's ``insert`` (the two databases touchflow runs on)::

        @per_dialect
        def _touch(insert):
            return insert(table).on_conflict_do_nothing(index_elements=["key"])

        conn.execute(_touch(conn), rows)
    """
    built: dict[str, T] = {}

    def get(conn: Connection) -> T:
        name = conn.dialect.name
        stmt = built.get(name)
        if stmt is None:
            stmt = built[name] = build(insert_for(conn))
        return stmt

    get.__doc__ = build.__doc__
    return get


def by_dialect(build: Callable[[str], T]) -> Callable[[Connection], T]:
    """Decorate ``build(dialect_name)`` so that ``stmt(conn)`` returns it built once per dialect.

    For statements whose SQL differs between SQLite and PostgreSQL beyond the
    ``insert`` (:func:`per_dialect`), such as :func:`one_of`.
    """
    built: dict[str, T] = {}

    def get(conn: Connection) -> T:
        name = conn.dialect.name
        stmt = built.get(name)
        if stmt is None:
            stmt = built[name] = build(name)
        return stmt

    get.__doc__ = build.__doc__
    return get


def one_of(column: Any, name: str, item: Any, dialect: str) -> Any:
    """``column IN`` the list bound to parameter ``name``, as ONE parameter (:func:`values_param`).

    An ``IN`` list expands to one bind parameter per value, and SQLAlchemy
    names each of them on every execution: for the tick's batches of 1,000 ids
    that cost more than the queries (~5 % of a tick, profiled). SQLite reads a
    JSON array with ``json_each``; PostgreSQL takes an array (``= ANY``).
    ``item``: the values' SQL type (PostgreSQL's array element).
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(item)))
    values = func.json_each(bindparam(name, type_=String())).table_valued("value")
    return column.in_(select(values.c.value))


def values_param(conn: Connection, values: Iterable[Any]) -> Any:
    """The value of a :func:`one_of` parameter on ``conn``'s dialect."""
    if conn.dialect.name == "postgresql":
        return list(values)
    return json.dumps(list(values))
