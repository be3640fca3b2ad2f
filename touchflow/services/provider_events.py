"""Provider events: stored once, then turned into enrollment changes.

Webhooks reach this module as vendor-free
:class:`~touchflow.domain.events.ProviderEvent` objects (their adapters verify
signatures, parse bodies and say what each event is and does). Everything that
decides about the store lives here. Pure SQLAlchemy, ``now`` comes in as an argument.

Exactly once, whatever the provider retries: every event is inserted into
``events`` with insert-on-conflict-do-nothing on its ``provider_event_id`` and
``RETURNING``; only the rows this call inserted change any state. The same
delivery five times, or five deliveries at once from two workers, change the
state once (on PostgreSQL the second insert waits on the unique index until
the first transaction ends, then does nothing).

An event's ``effect``: ``bounce`` bounces the prospect (email suppressed),
``unsubscribe`` opts them out of everything for good, ``reply`` is a reply of
the prospect, ``sms_opt_out`` / ``sms_opt_in`` change the number's SMS
opt-out. An ``accepted`` event settles a touch whose delivery was ``unknown``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from touchflow.domain.batching import chunks
from touchflow.domain.enrollment import State
from touchflow.domain.events import EXIT_EFFECTS, Effect, ProviderEvent
from touchflow.domain.phones import e164_or_raw
from touchflow.services.account_replies import DEFAULT_ACCOUNT_PAUSE_DAYS, apply_reply
from touchflow.services.event_log import (
    ID_MAX,
    SOURCE_MAX,
    TYPE_MAX,
    column_safe,
    column_text,
    event_key,
)
from touchflow.services.opt_outs import sms_opt_in, sms_opt_out
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import apply_exit_event, reconcile_delivered
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import enrollments, events, prospects, touches

__all__ = ["IngestReport", "ingest_events"]


@dataclass
class IngestReport:
    """What one :func:`ingest_events` call did."""

    received: int = 0
    stored: int = 0  # new rows in ``events``
    duplicates: int = 0  # already stored (earlier delivery) or repeated in this batch
    applied: int = 0  # stored events that changed state (exit, opt-out, opt-in)
    unmatched: int = 0  # stored events that matched no prospect
    reconciled: int = 0  # `unknown` touches the provider's events showed were sent

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Match:
    prospect_id: int | None = None
    enrollment_id: int | None = None


_NO_MATCH = _Match()


def ingest_events(
    conn: Connection,
    runtimes: RuntimeCache,
    items: Sequence[ProviderEvent],
    now: datetime,
    *,
    account_pause_days: int = DEFAULT_ACCOUNT_PAUSE_DAYS,
) -> IngestReport:
    """Store provider events (deduplicated) and apply the newly stored ones.

    One query resolves the touch keys to enrollments and prospects (then the
    email, then the phone, for events without a known touch), one multi-row
    insert-on-conflict-do-nothing stores the batch and returns which rows are
    new; only those change state. A reply (a text answering ours) is
    :func:`~touchflow.services.account_replies.apply_reply`, so the colleagues'
    cadences' ``on_account_reply`` applies (``account_pause_days`` for ``pause``).
    Runs in the caller's transaction.
    """
    report = IngestReport(received=len(items))
    unique: dict[str, ProviderEvent] = {}
    for ev in items:
        key = event_key(ev.provider_event_id)
        if key in unique:
            report.duplicates += 1
        else:
            unique[key] = ev
    if not unique:
        return report
    batch = list(unique.items())
    matches = _resolve(conn, [ev for _, ev in batch])
    rows: list[dict[str, Any]] = [
        {
            "provider_event_id": key,
            "prospect_id": m.prospect_id,
            "enrollment_id": m.enrollment_id,
            "touch_key": column_safe(ev.touch_key, ID_MAX),
            # PostgreSQL refuses NUL in text: a fuzzed CallStatus once made this a 500.
            "type": column_text(ev.type, TYPE_MAX),
            "occurred_at": ev.occurred_at,
            "source": column_text(ev.source, SOURCE_MAX),
            "payload": ev.payload,
            "created_at": now,
        }
        for (key, ev), m in zip(batch, matches, strict=True)
    ]
    stmt = (
        dialect_insert(conn, events)
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(events.c.provider_event_id)
    )
    # In arrival order. Two overlapping batches in different orders can deadlock on
    # PostgreSQL's unique index; the API reruns the transaction then (a retry sends
    # the same batch in the same order, so that is rare).
    new: set[str] = set(conn.execute(stmt, rows).scalars())
    report.stored = len(new)
    report.duplicates += len(batch) - len(new)
    accepted = [
        row["touch_key"]
        for (key, ev), row in zip(batch, rows, strict=True)
        if key in new and row["touch_key"] and ev.accepted
    ]
    if accepted:
        report.reconciled = reconcile_delivered(conn, runtimes, accepted, now)
    for (key, ev), m, row in zip(batch, matches, rows, strict=True):
        if key not in new:
            continue
        if m.prospect_id is None:
            report.unmatched += 1
        effect = ev.effect
        if effect is not None and _apply(
            conn, runtimes, ev, m, effect, row["touch_key"], now, account_pause_days
        ):
            report.applied += 1
    return report


def _apply(
    conn: Connection,
    runtimes: RuntimeCache,
    ev: ProviderEvent,
    m: _Match,
    effect: Effect,
    touch_key: str | None,
    now: datetime,
    account_pause_days: int,
) -> bool:
    if effect not in EXIT_EFFECTS:
        phone = column_safe(ev.phone, 32)
        if phone is None:
            return False
        if effect == "sms_opt_out":
            sms_opt_out(conn, phone, now, source=ev.source)
            return True
        return sms_opt_in(conn, phone, now, source=ev.source)
    if m.prospect_id is None:
        return False
    # "" rather than None: the row is stored, no need to look up a touch to record.
    source, key = column_text(ev.source, SOURCE_MAX), touch_key or ""
    if effect == "reply":
        apply_reply(
            conn, runtimes, m.prospect_id, now, source=source, touch_key=key, record=False,
            account_pause_days=account_pause_days,
        )  # fmt: skip
    else:
        apply_exit_event(
            conn, runtimes, m.prospect_id, effect, now, source=source, touch_key=key, record=False
        )
    return True


def _resolve(conn: Connection, batch: Sequence[ProviderEvent]) -> list[_Match]:
    """Prospect and enrollment per event: by touch key, else email, else phone."""
    keys = {k for ev in batch if (k := column_safe(ev.touch_key, ID_MAX)) is not None}
    by_key: dict[str, _Match] = {}
    for chunk in chunks(sorted(keys)):
        q = (
            select(touches.c.key, touches.c.enrollment_id, enrollments.c.prospect_id)
            .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
            .where(touches.c.key.in_(chunk))
        )
        for row in conn.execute(q):
            by_key[row.key] = _Match(row.prospect_id, row.enrollment_id)
    out: list[_Match | None] = [by_key.get(ev.touch_key or "") for ev in batch]

    emails = {
        e.lower()
        for ev, m in zip(batch, out, strict=True)
        if m is None and (e := column_safe(ev.email, 320)) is not None
    }
    by_email: dict[str, int] = {}
    for chunk in chunks(sorted(emails)):
        q = select(prospects.c.email, prospects.c.id).where(prospects.c.email.in_(chunk))
        by_email.update({row.email: row.id for row in conn.execute(q)})
    for i, ev in enumerate(batch):
        if out[i] is None and ev.email and ev.email.lower() in by_email:
            out[i] = _Match(by_email[ev.email.lower()])

    phones = {
        e164_or_raw(p)
        for ev, m in zip(batch, out, strict=True)
        if m is None and (p := column_safe(ev.phone, 32)) is not None
    }
    by_phone = _prospects_by_phone(conn, phones)
    for i, ev in enumerate(batch):
        if out[i] is None and (p := column_safe(ev.phone, 32)) is not None:
            pid = by_phone.get(e164_or_raw(p))
            if pid is not None:
                out[i] = _Match(pid)
    return [m or _NO_MATCH for m in out]


def _prospects_by_phone(conn: Connection, phones: Iterable[str]) -> dict[str, int]:
    """The prospect each number belongs to.

    Several prospects can share a number (a switchboard): the one with the most
    recently updated open enrollment wins, then the oldest prospect.
    """
    best: dict[str, tuple[datetime, int]] = {}
    never = datetime.min.replace(tzinfo=UTC)
    open_states = [State.PENDING.value, State.ACTIVE.value, State.PAUSED.value]
    for chunk in chunks(sorted(phones)):
        q = (
            select(
                prospects.c.phone,
                prospects.c.id,
                func.max(enrollments.c.updated_at).label("last"),
            )
            .select_from(prospects)
            .outerjoin(
                enrollments,
                (enrollments.c.prospect_id == prospects.c.id)
                & enrollments.c.state.in_(open_states),
            )
            .where(prospects.c.phone.in_(chunk))
            .group_by(prospects.c.phone, prospects.c.id)
        )
        for row in conn.execute(q):
            phone: str = row.phone
            pid: int = row.id
            last = _aware(row.last) or never
            cur = best.get(phone)
            if cur is None or (last, -pid) > (cur[0], -cur[1]):
                best[phone] = (last, pid)
    return {phone: pid for phone, (_, pid) in best.items()}


def _aware(value: datetime | str | None) -> datetime | None:
    """An aggregate over a UTCDateTime column skips the type: naive UTC (or text on SQLite)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
