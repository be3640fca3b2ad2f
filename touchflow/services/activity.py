"""The dashboard's activity: what changed since a mark (for the live poller), recent rows, per day.

High-water mark: the poller remembers the highest event id it has published
and asks for ``id > mark - LOOKBACK``, dropping ids it already published. On
PostgreSQL ids are taken at INSERT but become visible at COMMIT, so a row
can appear below the mark after a later one was read; the lookback window
catches rows committed up to ``LOOKBACK`` ids late (seconds of traffic).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from touchflow.store import activity as store
from touchflow.store.activity import ACTIVITY_TYPES, ActivityRow, DealChangeRow

__all__ = [
    "ACTIVITY_TYPES",
    "LOOKBACK",
    "Activity",
    "ActivityMark",
    "DailySeries",
    "DealChange",
    "changes_since",
    "daily_series",
    "deal_changes_since",
    "deal_start_mark",
    "recent_activity",
    "start_mark",
    "start_marks",
]

#: Event ids re-read below the mark on every poll (late commits).
LOOKBACK = 2000

_LABELS = {
    "replied": "replied",
    "sms_reply": "replied by text",
    "meeting_booked": "booked a meeting",
    "bounce": "bounced",
    "unsubscribe": "unsubscribed",
    "spamreport": "reported spam",
    "sms_stop": "texted STOP",
}


@dataclass(frozen=True)
class Activity:
    """One row of the live feed."""

    id: int
    kind: str  # events.type
    label: str
    at: datetime
    owner: str | None
    email: str | None
    name: str | None
    company: str | None
    cadence: str | None
    source: str

    @classmethod
    def of(cls, row: ActivityRow) -> Activity:
        return cls(
            row.id,
            row.type,
            _LABELS.get(row.type, row.type),
            row.occurred_at,
            row.owner,
            row.email,
            row.name,
            row.company,
            row.cadence_id,
            row.source,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "at": self.at.isoformat(),
            "owner": self.owner,
            "email": self.email,
            "name": self.name,
            "company": self.company,
            "cadence": self.cadence,
            "source": self.source,
        }


@dataclass(frozen=True)
class ActivityMark:
    """Where the poller stands: the highest id published and the ids just under it it has seen."""

    last_id: int
    seen: frozenset[int] = field(default_factory=frozenset)


def start_mark(conn: Connection) -> ActivityMark:
    """A mark at the newest event: a poller starting now publishes only what comes next."""
    top = store.max_event_id(conn)
    below = store.activity_rows(conn, after_id=max(top - LOOKBACK, 0), limit=5000)
    return ActivityMark(top, frozenset(r.id for r in below))


def changes_since(conn: Connection, mark: ActivityMark) -> tuple[list[Activity], ActivityMark]:
    """Activity rows not yet published since ``mark``, oldest first, and the next mark."""
    rows = store.activity_rows(conn, after_id=max(mark.last_id - LOOKBACK, 0), limit=5000)
    new = [r for r in rows if r.id not in mark.seen]
    if not new:
        return [], mark
    top = max(mark.last_id, max(r.id for r in new))
    floor = top - LOOKBACK
    seen = frozenset(i for i in (*mark.seen, *(r.id for r in new)) if i > floor)
    return [Activity.of(r) for r in new], ActivityMark(top, seen)


@dataclass(frozen=True)
class DealChange:
    """A deal moving to a stage: the live feed's ``deal`` events."""

    id: int
    deal_id: str
    source: str
    name: str | None
    account: str | None
    owner: str | None
    stage: str
    at: datetime
    amount: float | None
    currency: str | None

    @classmethod
    def of(cls, r: DealChangeRow) -> DealChange:
        return cls(r.id, r.deal_id, r.source, r.name, r.account, r.owner, r.stage, r.entered_at,
                   r.amount, r.currency)  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "deal_stage",
            "label": f"moved to {self.stage}",
            "deal_id": self.deal_id,
            "source": self.source,
            "name": self.name,
            "account": self.account,
            "owner": self.owner,
            "stage": self.stage,
            "at": self.at.isoformat(),
            "amount": self.amount,
            "currency": self.currency,
        }


def _advance(mark: ActivityMark, ids: list[int]) -> tuple[list[int], ActivityMark]:
    """The ids not yet published and the next mark (the same lookback as events)."""
    new = [i for i in ids if i not in mark.seen]
    if not new:
        return [], mark
    top = max(mark.last_id, max(new))
    floor = top - LOOKBACK
    return new, ActivityMark(top, frozenset(i for i in (*mark.seen, *new) if i > floor))


def deal_start_mark(conn: Connection) -> ActivityMark:
    """A mark at the newest deal stage change."""
    top = store.max_deal_change_id(conn)
    below = store.deal_change_rows(conn, after_id=max(top - LOOKBACK, 0), limit=5000)
    return ActivityMark(top, frozenset(r.id for r in below))


def deal_changes_since(
    conn: Connection, mark: ActivityMark
) -> tuple[list[DealChange], ActivityMark]:
    """Deal stage changes not yet published since ``mark``, oldest first, and the next mark.

    A bulk import (thousands of changes at once) is read in pages of 5,000 a
    poll; the feed shows each one, the pages refetch once.
    """
    rows = store.deal_change_rows(conn, after_id=max(mark.last_id - LOOKBACK, 0), limit=5000)
    new, nxt = _advance(mark, [r.id for r in rows])
    keep = set(new)
    return [DealChange.of(r) for r in rows if r.id in keep], nxt


def start_marks(conn: Connection) -> tuple[ActivityMark, ActivityMark]:
    """The live poller's two marks: events, and deal stage changes."""
    return start_mark(conn), deal_start_mark(conn)


def recent_activity(
    conn: Connection, owners: Collection[str] | None, limit: int = 20
) -> list[Activity]:
    """The newest activity the owners (None: everyone) may see, newest first."""
    rows = store.activity_rows(conn, owners=owners, limit=limit, newest_first=True)
    return [Activity.of(r) for r in rows]


@dataclass(frozen=True)
class DailySeries:
    days: list[date]
    sent: list[int]
    replies: list[int]

    def as_json(self) -> dict[str, Any]:
        return {
            "days": [d.isoformat() for d in self.days],
            "sent": self.sent,
            "replies": self.replies,
        }


def daily_series(
    conn: Connection,
    today: date,
    days: int,
    *,
    owners: Collection[str] | None = None,
    cadence: str | None = None,
) -> DailySeries:
    """Touches sent and replies per UTC day over the `days` days ending `today`, zeros kept."""
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    sent, replies = store.daily_counts(conn, start, end, owners=owners, cadence=cadence)
    span = [first + timedelta(days=i) for i in range(days)]
    return DailySeries(span, [sent.get(d, 0) for d in span], [replies.get(d, 0) for d in span])
