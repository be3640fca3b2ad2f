"""Prospects in the store: upsert by email, SMS consent, one prospect from a row.

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction, so
a CLI command or a flow decides what is atomic. Time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from touchflow.domain.batching import chunks
from touchflow.domain.compliance import sms_consent_answer
from touchflow.domain.enrollment import State
from touchflow.domain.prospects import STANDARD_FIELDS, Prospect
from touchflow.store.schema import enrollments, prospects

__all__ = [
    "PROSPECT_COLS",
    "find_prospect_id",
    "prospect_from_row",
    "record_sms_consent",
    "release_missing_data",
    "upsert_prospects",
]

#: Every standard column but the key (email), which identifies the row. Public for
#: :func:`touchflow.store.enrollments.enrollment_rows`, which selects them.
PROSPECT_COLS = tuple(f for f in STANDARD_FIELDS if f != "email")


def upsert_prospects(conn: Connection, items: Sequence[Prospect], now: datetime) -> tuple[int, int]:
    """Insert new prospects and update changed ones (by email). Returns (inserted, updated).

    A re-import that changes nothing writes nothing, so importing the same file
    twice is a no-op.
    """
    if not items:
        return 0, 0
    emails = [p.email for p in items]
    existing: dict[str, Row[Any]] = {}
    for chunk in chunks(emails):
        for row in conn.execute(select(prospects).where(prospects.c.email.in_(chunk))):
            existing[row.email] = row
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for p in items:
        if p.email in seen:
            continue
        seen.add(p.email)
        values = {c: getattr(p, c) for c in PROSPECT_COLS}
        values["fields"] = p.fields
        old = existing.get(p.email)
        if old is None:
            new_rows.append({"email": p.email, **values, "created_at": now, "updated_at": now})
        elif any(getattr(old, k) != v for k, v in values.items()):
            changed.append({"b_id": old.id, **values, "updated_at": now})
    if new_rows:
        conn.execute(prospects.insert(), new_rows)
    if changed:
        conn.execute(
            update(prospects)
            .where(prospects.c.id == bindparam("b_id"))
            .values({c: bindparam(c) for c in (*PROSPECT_COLS, "fields", "updated_at")}),
            changed,
        )
        release_missing_data(conn, [c["b_id"] for c in changed], now)
    record_sms_consent(conn, items, now)
    return len(new_rows), len(changed)


def record_sms_consent(conn: Connection, items: Sequence[Prospect], now: datetime) -> None:
    """An ``sms_consent`` column (yes/no) records or withdraws consent to texts.

    The first "yes" stamps ``sms_consent_at``; re-importing it keeps that
    time; an explicit "no" withdraws it. Public for the importer's intake
    (:mod:`touchflow.store.intake`), which records consent the same way.
    """
    answers = [(p.email, sms_consent_answer(p.fields.get("sms_consent"))) for p in items]
    given = [email for email, yes in answers if yes is True]
    withdrawn = [email for email, yes in answers if yes is False]
    for chunk in chunks(given):
        conn.execute(
            update(prospects)
            .where(prospects.c.email.in_(chunk), prospects.c.sms_consent_at.is_(None))
            .values(sms_consent_at=now)
        )
    for chunk in chunks(withdrawn):
        conn.execute(
            update(prospects)
            .where(prospects.c.email.in_(chunk), prospects.c.sms_consent_at.is_not(None))
            .values(sms_consent_at=None)
        )


def prospect_from_row(row: Any) -> Prospect:
    """Build a :class:`Prospect` from a row that has the prospect columns."""
    return Prospect(
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        title=row.title,
        company=row.company,
        domain=row.domain,
        phone=row.phone,
        country=row.country,
        timezone=row.timezone,
        fields=dict(row.fields or {}),
    )


def release_missing_data(conn: Connection, prospect_ids: Sequence[int], now: datetime) -> None:
    """A held enrollment (missing data) gets another chance once its prospect's data changed.

    Due at ``now``: the next tick decides it again. Every path that changes
    prospect data (upsert here, the bulk import) calls this.
    """
    for chunk in chunks(prospect_ids):
        conn.execute(
            update(enrollments)
            .where(
                enrollments.c.prospect_id.in_(chunk),
                enrollments.c.state == State.PENDING.value,
                enrollments.c.reason.like("missing_data:%"),
            )
            .values(reason=None, next_due_at=now, updated_at=now)
        )


def find_prospect_id(conn: Connection, email: str) -> int | None:
    return conn.execute(select(prospects.c.id).where(prospects.c.email == email)).scalar()
