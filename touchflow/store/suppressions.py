"""Suppressions in the store: emails, phones and domains never to contact again.

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction, so
a CLI command or a flow decides what is atomic. Time comes in as ``now``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import suppressions

__all__ = ["add_suppression"]


def add_suppression(
    conn: Connection, kind: str, value: str, *, reason: str, source: str, now: datetime
) -> None:
    """Suppress an email, phone or domain (idempotent: the first reason stays).

    Emails and domains are stored lower-case, phones as given (E.164).
    """
    stmt = dialect_insert(conn, suppressions).values(
        kind=kind, value=value.lower(), reason=reason, source=source, created_at=now
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["kind", "value"]))
