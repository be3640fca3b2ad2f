"""The ``users`` table: who may sign in to the dashboard, their role and manager.

Passwords arrive here already hashed (:mod:`touchflow.services.users` hashes
them); this module never sees a clear-text password.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from touchflow.store.schema import users

__all__ = ["UserRow", "add_user", "get_user", "list_users", "remove_user", "reports_of", "set_hash"]


@dataclass(frozen=True)
class UserRow:
    email: str
    role: str  # admin|manager|rep
    manager_email: str | None
    password_hash: str | None


def _row(r: object) -> UserRow:
    return UserRow(r.email, r.role, r.manager_email, r.password_hash)  # type: ignore[attr-defined]


def get_user(conn: Connection, email: str) -> UserRow | None:
    r = conn.execute(
        select(users.c.email, users.c.role, users.c.manager_email, users.c.password_hash).where(
            users.c.email == email
        )
    ).first()
    return _row(r) if r is not None else None


def list_users(conn: Connection) -> list[UserRow]:
    rows = conn.execute(
        select(users.c.email, users.c.role, users.c.manager_email, users.c.password_hash).order_by(
            users.c.email
        )
    )
    return [_row(r) for r in rows]


def add_user(
    conn: Connection,
    email: str,
    role: str,
    manager_email: str | None,
    password_hash: str | None,
    now: datetime,
) -> bool:
    """Insert or update ``email``; True when it was new."""
    values = {
        "role": role,
        "manager_email": manager_email,
        "password_hash": password_hash,
        "updated_at": now,
    }
    changed = conn.execute(update(users).where(users.c.email == email).values(**values)).rowcount
    if changed:
        return False
    conn.execute(users.insert().values(email=email, created_at=now, **values))
    return True


def set_hash(conn: Connection, email: str, password_hash: str, now: datetime) -> None:
    """Store a re-hash (Argon2 parameters raised since the hash was made)."""
    conn.execute(
        update(users)
        .where(users.c.email == email)
        .values(password_hash=password_hash, updated_at=now)
    )


def remove_user(conn: Connection, email: str) -> bool:
    return bool(conn.execute(delete(users).where(users.c.email == email)).rowcount)


def reports_of(conn: Connection, managers: Iterable[str]) -> set[str]:
    """The users whose manager is one of ``managers`` (one level)."""
    wanted = list(managers)
    if not wanted:
        return set()
    rows = conn.execute(select(users.c.email).where(users.c.manager_email.in_(wanted)))
    return {r.email for r in rows}
