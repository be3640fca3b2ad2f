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
from touchflow.store.activity import ACTIVITY_TYPES, ActivityRow

__all__ = [
    "ACTIVITY_TYPES",
    "LOOKBACK",
    "Activity",
    "ActivityMark",
    "DailySeries",
    "changes_since",
    "daily_series",
    "recent_activity",
    "start_mark",
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
