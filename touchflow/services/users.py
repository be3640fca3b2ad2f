"""Dashboard users: add, list, remove, check a password, and who a signed-in person sees.

Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher``, its
RFC 9106 low-memory defaults); a hash made with weaker parameters is
re-hashed at the next successful sign-in. An unknown address costs the same
verification as a known one, so response times do not tell who has an
account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine

from touchflow.domain.access import ROLES, Role, Viewer
from touchflow.domain.prospects import normalize_email
from touchflow.domain.routing.team import TeamConfig
from touchflow.errors import TouchflowError
from touchflow.store import users as store

__all__ = [
    "User",
    "UserError",
    "add_user",
    "authenticate",
    "hash_password",
    "list_users",
    "remove_user",
    "viewer_for",
]

_hasher = PasswordHasher()
#: Verified when the address is unknown, so both paths cost one Argon2 verification.
_DUMMY_HASH = _hasher.hash("touchflow: no such user")
MIN_PASSWORD = 8


class UserError(TouchflowError):
    """A user that cannot be added as asked (bad role, bad address, short password)."""


@dataclass(frozen=True)
class User:
    email: str
    role: Role
    manager_email: str | None
    has_password: bool


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def _check_email(email: str) -> str:
    email = normalize_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
        raise UserError(f"not an email address: {email!r}")
    return email


def add_user(
    engine: Engine,
    email: str,
    role: str,
    now: datetime,
    *,
    manager: str | None = None,
    password: str | None = None,
) -> bool:
    """Add (or update) a user; True when new. No password: reverse-proxy sign-in only."""
    email = _check_email(email)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    manager_email = _check_email(manager) if manager else None
    if manager_email == email:
        raise UserError("a user cannot be their own manager")
    hashed = hash_password(password) if password is not None else None
    with engine.begin() as conn:
        return store.add_user(conn, email, role, manager_email, hashed, now)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = store.list_users(conn)
    return [
        User(r.email, r.role, r.manager_email, r.password_hash is not None)  # type: ignore[arg-type]
        for r in rows
    ]


def remove_user(engine: Engine, email: str) -> bool:
    with engine.begin() as conn:
        return store.remove_user(conn, normalize_email(email))


def authenticate(engine: Engine, email: str, password: str, now: datetime) -> str | None:
    """The user's normalized address when ``password`` is theirs, else None."""
    email = normalize_email(email)
    with engine.connect() as conn:
        row = store.get_user(conn, email)
    stored = row.password_hash if row is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        with engine.begin() as conn:
            store.set_hash(conn, email, _hasher.hash(password), now)
    return email


def viewer_for(
    conn: Connection, email: str, team: TeamConfig | None, *, via: str = "session"
) -> Viewer | None:
    """The viewer ``email`` signs in as; None when they are not (or no longer) a user."""
    row = store.get_user(conn, normalize_email(email))
    if row is None or row.role not in ROLES:
        return None
    role: Role = row.role
    reports: set[str] = set()
    if role == "manager":
        reports = store.reports_of(conn, [row.email])
        if team is not None:
            reports |= {m.email for m in team.members if m.manager == row.email}
    return Viewer(row.email, role, Viewer.team_of(row.email, role, reports), via=via)


def owner_choices(conn: Connection, team: TeamConfig | None, viewer: Viewer) -> list[str]:
    """The owners a viewer can pick in the filters bar: their team, or everyone for an admin."""
    if viewer.owners is not None:
        return sorted(viewer.owners)
    people = {r.email for r in store.list_users(conn) if r.role != "admin"}
    if team is not None:
        people |= {m.email for m in team.members}
    return sorted(people)
