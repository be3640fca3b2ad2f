"""Read models of the dashboard's activity: recent events with their owner, touches per day.

An event's owner is the owner of the enrollment it is about; an event not
tied to an enrollment (a reply matched by address) falls back to the owner of
the prospect's latest enrollment, then to the prospect's AE.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Date, String, and_, cast, func, select
from sqlalchemy.sql import ColumnElement

from touchflow.store.schema import (
    deal_stage_changes,
    deals,
    enrollments,
    events,
    prospects,
    touches,
)

__all__ = [
    "ACTIVITY_TYPES",
    "ActivityRow",
    "DealChangeRow",
    "activity_rows",
    "daily_counts",
    "deal_change_rows",
    "deals_version",
    "max_deal_change_id",
    "max_event_id",
]

#: The events the live feed shows (events.type as stored).
ACTIVITY_TYPES: tuple[str, ...] = (
    "replied",
    "meeting_booked",
    "bounce",
    "sms_reply",
    "unsubscribe",
    "spamreport",
    "sms_stop",
)


@dataclass(frozen=True)
class ActivityRow:
    id: int
    type: str
    occurred_at: datetime
    source: str
    owner: str | None
    email: str | None
    name: str | None
    company: str | None
    cadence_id: str | None


def _latest_owner() -> Any:
    latest = enrollments.alias("latest")
    return (
        select(latest.c.owner_email)
        .where(latest.c.prospect_id == events.c.prospect_id)
        .order_by(latest.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _owner() -> ColumnElement[Any]:
    return func.coalesce(enrollments.c.owner_email, _latest_owner(), prospects.c.ae_email)


def activity_rows(
    conn: Connection,
    *,
    after_id: int | None = None,
    owners: Collection[str] | None = None,
    limit: int = 500,
    newest_first: bool = False,
) -> list[ActivityRow]:
    """Activity events with ``id > after_id`` (every one when None), owned by ``owners``."""
    owner = _owner().label("owner")
    q = (
        select(
            events.c.id,
            events.c.type,
            events.c.occurred_at,
            events.c.source,
            owner,
            prospects.c.email,
            func.trim(
                func.coalesce(prospects.c.first_name, "")
                + " "
                + func.coalesce(prospects.c.last_name, "")
            ).label("name"),
            prospects.c.company,
            enrollments.c.cadence_id,
        )
        .select_from(
            events.outerjoin(prospects, prospects.c.id == events.c.prospect_id).outerjoin(
                enrollments, enrollments.c.id == events.c.enrollment_id
            )
        )
        .where(events.c.type.in_(ACTIVITY_TYPES))
    )
    if after_id is not None:
        q = q.where(events.c.id > after_id)
    if owners is not None:
        q = q.where(_owner().in_(list(owners)))
    q = q.order_by(events.c.id.desc() if newest_first else events.c.id).limit(limit)
    return [
        ActivityRow(
            r.id,
            r.type,
            r.occurred_at,
            r.source,
            r.owner,
            r.email,
            r.name or None,
            r.company,
            r.cadence_id,
        )
        for r in conn.execute(q)
    ]


def max_event_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _day_of(conn: Connection, column: Any) -> ColumnElement[Any]:
    """The UTC day of a timestamp column (stored naive UTC): SQLite's date(), else a cast."""
    if conn.dialect.name == "sqlite":
        return func.date(column, type_=String)
    return cast(column, Date)


def daily_counts(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    owners: Collection[str] | None = None,
    cadence: str | None = None,
) -> tuple[dict[date, int], dict[date, int]]:
    """Touches sent and replies received per UTC day in ``[start, end)``."""
    sent_day = _day_of(conn, touches.c.executed_at).label("day")
    sent_q = (
        select(sent_day, func.count())
        .select_from(touches.join(enrollments, enrollments.c.id == touches.c.enrollment_id))
        .where(
            touches.c.status == "sent",
            touches.c.executed_at >= start,
            touches.c.executed_at < end,
        )
        .group_by(sent_day)
    )
    reply_day = _day_of(conn, events.c.occurred_at).label("day")
    reply_q = (
        select(reply_day, func.count())
        .select_from(
            events.outerjoin(prospects, prospects.c.id == events.c.prospect_id).outerjoin(
                enrollments, enrollments.c.id == events.c.enrollment_id
            )
        )
        .where(
            events.c.type.in_(("replied", "sms_reply")),
            events.c.occurred_at >= start,
            events.c.occurred_at < end,
        )
        .group_by(reply_day)
    )
    if owners is not None:
        sent_q = sent_q.where(enrollments.c.owner_email.in_(list(owners)))
        reply_q = reply_q.where(_owner().in_(list(owners)))
    if cadence is not None:
        sent_q = sent_q.where(enrollments.c.cadence_id == cadence)
        reply_q = reply_q.where(enrollments.c.cadence_id == cadence)
    sent = {_day(r[0]): int(r[1]) for r in conn.execute(sent_q)}
    replies = {_day(r[0]): int(r[1]) for r in conn.execute(reply_q)}
    return sent, replies


@dataclass(frozen=True)
class DealChangeRow:
    """A deal entering a stage (``deal_stage_changes``), with the deal's owner and amount."""

    id: int
    source: str
    deal_id: str
    stage: str
    entered_at: datetime
    name: str | None
    account: str | None
    owner: str | None
    amount: float | None
    currency: str | None


def max_deal_change_id(conn: Connection) -> int:
    c = deal_stage_changes.c
    return int(conn.execute(select(func.coalesce(func.max(c.id), 0))).scalar_one())


def deal_change_rows(conn: Connection, *, after_id: int, limit: int = 500) -> list[DealChangeRow]:
    """Stage changes with ``id > after_id``, oldest first (of a deal not stored: no owner)."""
    c, d = deal_stage_changes.c, deals.c
    q = (
        select(
            c.id, c.source, c.deal_id, c.stage, c.entered_at,
            d.name, d.account_domain, d.owner_email, d.amount, d.currency,
        )
        .select_from(
            deal_stage_changes.outerjoin(deals, and_(d.source == c.source, d.deal_id == c.deal_id))
        )
        .where(c.id > after_id)
        .order_by(c.id)
        .limit(limit)
    )  # fmt: skip
    rows: list[Any] = list(conn.execute(q))
    return [DealChangeRow(*r) for r in rows]


def deals_version(conn: Connection) -> tuple[Any, ...]:
    """Changes whenever a deal or a stage change is written (a forecast cache's key)."""
    d = deals.c
    row = conn.execute(select(func.count(d.id), func.max(d.updated_at), func.max(d.id))).one()
    return (*row, max_deal_change_id(conn))
