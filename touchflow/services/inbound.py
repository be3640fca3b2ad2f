"""Provider events and inbound messages: stored once, then turned into enrollment changes.

Webhooks reach this module as vendor-free
:class:`~touchflow.domain.events.ProviderEvent` objects (their adapters verify
signatures, parse bodies and say what each event is and does) or as an
:class:`~touchflow.domain.replies.InboundMessage`. Everything that decides
about the store lives here. Pure SQLAlchemy, ``now`` comes in as an argument.

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

An SMS opt-out is a ``phone`` suppression with reason ``sms_stop``: texts to
that number stop on every cadence; email and the enrollments go on.

Paused enrollments carry the date they should resume in ``next_due_at``
(out-of-office return date, or the end of an account pause); the tick resumes
a paused enrollment once that date is due.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, delete, func, select, update

from touchflow.domain.batching import IN_LIMIT, chunks
from touchflow.domain.enrollment import Event, State, can, sources
from touchflow.domain.events import EXIT_EFFECTS, Effect, ProviderEvent
from touchflow.domain.phones import e164_or_raw
from touchflow.domain.replies import Classification, InboundMessage
from touchflow.store.repo import (
    RuntimeCache,
    add_suppression,
    apply_exit_event,
    dialect_insert,
    reconcile_delivered,
)
from touchflow.store.schema import enrollments, events, prospects, suppressions, tasks, touches
from touchflow.store.transitions import transition_where

# Column sizes of ``events`` (schema.py): longer ids are hashed, longer keys dropped.
_ID_MAX = 200
_TYPE_MAX = 32
_SOURCE_MAX = 50


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
class ReplyOutcome:
    """What :func:`apply_inbound_message` did with one message."""

    kind: str  # the classification
    duplicate: bool = False  # already processed: nothing changed
    prospect_id: int | None = None
    touch_key: str | None = None
    matched_by: str | None = None  # "in_reply_to" | "references" | "sender"
    ended: int = 0  # the prospect's enrollments ended (reply, unsubscribe, bounce)
    paused: int = 0  # the prospect's enrollments paused (out of office)
    resume_at: datetime | None = None  # when paused ones resume
    account_paused: int = 0  # colleagues' enrollments paused (on_account_reply: pause)
    account_finished: int = 0  # colleagues' enrollments finished (on_account_reply: finish)

    @property
    def matched(self) -> bool:
        return self.prospect_id is not None


@dataclass(frozen=True)
class _Match:
    prospect_id: int | None = None
    enrollment_id: int | None = None


_NO_MATCH = _Match()


# -- SMS keywords and opt-outs ---------------------------------------------------


def sms_opt_out(conn: Connection, phone: str, now: datetime, *, source: str) -> None:
    """Stop texts to ``phone`` on every cadence (a ``phone`` suppression, reason ``sms_stop``).

    Email and the enrollments themselves go on. Idempotent.
    """
    value = e164_or_raw(phone)
    add_suppression(conn, "phone", value, reason="sms_stop", source=source[:_SOURCE_MAX], now=now)


def sms_opt_in(conn: Connection, phone: str, now: datetime, *, source: str) -> bool:
    """Undo :func:`sms_opt_out` (START, YES, UNSTOP); True if the number was opted out.

    Only an ``sms_stop`` suppression is lifted: a number suppressed for another
    reason (manually, do-not-call) stays suppressed.
    """
    result = conn.execute(
        delete(suppressions).where(
            suppressions.c.kind == "phone",
            suppressions.c.value == e164_or_raw(phone).lower(),
            suppressions.c.reason == "sms_stop",
        )
    )
    return bool(result.rowcount)


# -- provider events -------------------------------------------------------------


def event_key(provider_event_id: str) -> str:
    """The ``events.provider_event_id`` for an id: as is, or hashed when unfit for the column."""
    if _safe(provider_event_id, _ID_MAX) is not None:
        return provider_event_id
    digest = hashlib.sha256(provider_event_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def _safe(value: object, max_len: int) -> str | None:
    """``value`` if it is a string a database column takes unchanged, else None.

    PostgreSQL refuses NUL in text; no driver encodes lone surrogates (which
    JSON's ``\\ud800`` escapes produce).
    """
    if not isinstance(value, str) or not value or len(value) > max_len:
        return None
    if "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def ingest_events(
    conn: Connection,
    runtimes: RuntimeCache,
    items: Sequence[ProviderEvent],
    now: datetime,
) -> IngestReport:
    """Store provider events (deduplicated) and apply the newly stored ones.

    One query resolves the touch keys to enrollments and prospects (then the
    email, then the phone, for events without a known touch), one multi-row
    insert-on-conflict-do-nothing stores the batch and returns which rows are
    new; only those change state. Runs in the caller's transaction.
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
            "touch_key": _safe(ev.touch_key, _ID_MAX),
            "type": ev.type[:_TYPE_MAX],
            "occurred_at": ev.occurred_at,
            "source": ev.source[:_SOURCE_MAX],
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
        if effect is not None and _apply(conn, runtimes, ev, m, effect, row["touch_key"], now):
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
) -> bool:
    if effect not in EXIT_EFFECTS:
        phone = _safe(ev.phone, 32)
        if phone is None:
            return False
        if effect == "sms_opt_out":
            sms_opt_out(conn, phone, now, source=ev.source)
            return True
        return sms_opt_in(conn, phone, now, source=ev.source)
    if m.prospect_id is None:
        return False
    apply_exit_event(
        conn,
        runtimes,
        m.prospect_id,
        effect,
        now,
        source=ev.source[:_SOURCE_MAX],
        # "" rather than None: the row is stored, no need to look up a touch to record.
        touch_key=touch_key or "",
        record=False,
    )
    return True


def _resolve(conn: Connection, batch: Sequence[ProviderEvent]) -> list[_Match]:
    """Prospect and enrollment per event: by touch key, else email, else phone."""
    keys = {k for ev in batch if (k := _safe(ev.touch_key, _ID_MAX)) is not None}
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
        if m is None and (e := _safe(ev.email, 320)) is not None
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
        if m is None and (p := _safe(ev.phone, 32)) is not None
    }
    by_phone = _prospects_by_phone(conn, phones)
    for i, ev in enumerate(batch):
        if out[i] is None and (p := _safe(ev.phone, 32)) is not None:
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


# -- inbound messages (replies) --------------------------------------------------

_STORED_REPLY_TYPES = {
    "reply": "replied",
    "out_of_office": "out_of_office",
    "unsubscribe": "unsubscribe",
    "bounce": "bounce",
    "auto_reply": "auto_reply",
}


def message_event_id(message: InboundMessage) -> str:
    """The dedupe key of an inbound message: its Message-ID, else a hash of its content."""
    if message.message_id and message.message_id.strip():
        return event_key(f"msg:{message.message_id.strip()}")
    basis = "\x1f".join(
        (message.from_addr, message.received_at.isoformat(), message.subject, message.text)
    )
    return f"msg-sha256:{hashlib.sha256(basis.encode('utf-8', 'surrogatepass')).hexdigest()}"


def apply_inbound_message(
    conn: Connection,
    runtimes: RuntimeCache,
    message: InboundMessage,
    classification: Classification,
    now: datetime,
    *,
    source: str,
    ooo_default_days: int = 7,
    account_pause_days: int = 14,
) -> ReplyOutcome:
    """Store an inbound email once and act on its classification.

    Matching: the touch whose ``Message-ID`` the message answers (In-Reply-To,
    then References, newest first), else the prospect with the sender's
    address. Effects:

    * ``reply``: the ``reply`` exit event; then every other prospect at the
      same account (same ``domain``) follows its own cadence's
      ``on_account_reply``: ``pause`` (paused, ``account_replied``, resumes
      after ``account_pause_days``), ``finish`` (finished, ``account_replied``)
      or ``continue``.
    * ``out_of_office``: the prospect's pending and active enrollments pause
      (``out_of_office``) until the return date at 00:00 UTC, or for
      ``ooo_default_days`` when there is none (or it has passed).
    * ``unsubscribe`` / ``bounce``: those exit events.
    * ``auto_reply``: stored only.

    A message seen before (same Message-ID) changes nothing. Unmatched
    messages are stored with no prospect.
    """
    kind = classification.kind
    touch_key, enrollment_id, prospect_id, matched_by = _match_message(conn, message)
    payload: dict[str, Any] = {
        "message_id": message.message_id,
        "from": message.from_addr,
        "to": list(message.to_addrs),
        "subject": message.subject[:500],
        "in_reply_to": message.in_reply_to,
        "kind": kind,
        "evidence": classification.evidence[:500],
        "return_date": classification.return_date.isoformat()
        if classification.return_date
        else None,
        "text": message.text[:2000],
    }
    stmt = (
        dialect_insert(conn, events)
        .values(
            provider_event_id=message_event_id(message),
            prospect_id=prospect_id,
            enrollment_id=enrollment_id,
            touch_key=touch_key,
            type=_STORED_REPLY_TYPES.get(kind, kind)[:_TYPE_MAX],
            occurred_at=message.received_at,
            source=source[:_SOURCE_MAX],
            payload=payload,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(events.c.id)
    )
    base = ReplyOutcome(kind, False, prospect_id, touch_key, matched_by)
    if conn.execute(stmt).scalar() is None:
        return ReplyOutcome(kind, True, prospect_id, touch_key, matched_by)
    if prospect_id is None:
        return base
    src = source[:_SOURCE_MAX]
    if kind in ("reply", "unsubscribe", "bounce"):
        # The row is stored: "" spares apply_exit_event looking up a touch to record.
        tk = touch_key or ""
        res = apply_exit_event(
            conn, runtimes, prospect_id, kind, now, source=src, touch_key=tk, record=False
        )
        paused = finished = 0
        if kind == "reply":
            paused, finished = _account_rule(conn, runtimes, prospect_id, now, account_pause_days)
        return ReplyOutcome(
            kind,
            False,
            prospect_id,
            touch_key,
            matched_by,
            ended=res.ended,
            account_paused=paused,
            account_finished=finished,
        )
    if kind == "out_of_office":
        resume = now + timedelta(days=ooo_default_days)
        if classification.return_date is not None:
            back = datetime.combine(classification.return_date, time(0), tzinfo=UTC)
            if back > now:
                resume = back
        n = _pause(conn, [prospect_id], "out_of_office", resume, now)
        return ReplyOutcome(
            kind, False, prospect_id, touch_key, matched_by, paused=n, resume_at=resume
        )
    return base


MatchedBy = Literal["in_reply_to", "references", "sender"]


def _match_message(
    conn: Connection, message: InboundMessage
) -> tuple[str | None, int | None, int | None, MatchedBy | None]:
    """(touch key, enrollment id, prospect id, how) for an inbound message."""
    wanted: list[tuple[str, Literal["in_reply_to", "references"]]] = []
    if (irt := _safe((message.in_reply_to or "").strip(), 300)) is not None:
        wanted.append((irt, "in_reply_to"))
    for ref in reversed(message.references):
        if (r := _safe(ref.strip(), 300)) is not None:
            wanted.append((r, "references"))
    if wanted:
        ids = list(dict.fromkeys(w for w, _ in wanted))[:IN_LIMIT]
        found = {
            row.message_id: row
            for row in conn.execute(
                select(
                    touches.c.message_id,
                    touches.c.key,
                    touches.c.enrollment_id,
                    enrollments.c.prospect_id,
                )
                .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
                .where(touches.c.message_id.in_(ids))
            )
        }
        for mid, how in wanted:
            row = found.get(mid)
            if row is not None:
                return row.key, row.enrollment_id, row.prospect_id, how
    sender = _safe(message.from_addr.strip().lower(), 320)
    if sender is not None:
        pid = conn.execute(select(prospects.c.id).where(prospects.c.email == sender)).scalar()
        if pid is not None:
            return None, None, pid, "sender"
    return None, None, None, None


# Paused for one of these, a later pause only pushes the resume date out.
_EXTENDABLE = ("out_of_office", "account_replied")


def _pause(
    conn: Connection, prospect_ids: Sequence[int], reason: str, resume: datetime, now: datetime
) -> int:
    """Pause the prospects' pending/active enrollments until ``resume``; returns how many.

    An enrollment waiting on a task (``waiting_task:...``) is left alone: its
    task is the owner's to work or skip, and pausing it would lose the wait.
    """
    if not prospect_ids:
        return 0
    waiting = enrollments.c.reason.like("waiting\\_task%", escape="\\")
    paused = transition_where(
        conn,
        Event.PAUSE,
        enrollments.c.prospect_id.in_(list(prospect_ids))
        & (enrollments.c.reason.is_(None) | ~waiting),
        {"reason": reason, "next_due_at": resume, "claimed_at": None, "updated_at": now},
    )
    conn.execute(
        update(enrollments)
        .where(
            enrollments.c.prospect_id.in_(list(prospect_ids)),
            enrollments.c.state == State.PAUSED.value,
            enrollments.c.reason.in_(_EXTENDABLE),
            enrollments.c.next_due_at < resume,
        )
        .values(next_due_at=resume, updated_at=now)
    )
    return paused


def _account_rule(
    conn: Connection, runtimes: RuntimeCache, prospect_id: int, now: datetime, pause_days: int
) -> tuple[int, int]:
    """Apply ``on_account_reply`` to the colleagues' enrollments; (paused, finished)."""
    domain = conn.execute(select(prospects.c.domain).where(prospects.c.id == prospect_id)).scalar()
    if not domain:
        return 0, 0
    rows = list(
        conn.execute(
            select(
                enrollments.c.id,
                enrollments.c.prospect_id,
                enrollments.c.state,
                enrollments.c.reason,
                enrollments.c.cadence_version,
            )
            .join(prospects, prospects.c.id == enrollments.c.prospect_id)
            .where(
                prospects.c.domain == domain,
                prospects.c.id != prospect_id,
                enrollments.c.state.in_(sources(Event.FINISH)),
            )
        )
    )
    to_pause: list[int] = []
    to_finish: list[int] = []
    for row in rows:
        rule = runtimes.get(conn, row.cadence_version).cadence.on_account_reply
        if rule == "finish":
            to_finish.append(row.id)
        elif (
            rule == "pause"
            and can(row.state, Event.PAUSE)
            and not (row.reason or "").startswith("waiting_task")
        ):
            to_pause.append(row.id)
    resume = now + timedelta(days=pause_days)
    for chunk in chunks(to_pause):
        transition_where(
            conn,
            Event.PAUSE,
            enrollments.c.id.in_(chunk),
            {"reason": "account_replied", "next_due_at": resume, "claimed_at": None,
             "updated_at": now},
        )  # fmt: skip
    for chunk in chunks(to_finish):
        transition_where(
            conn,
            Event.FINISH,
            enrollments.c.id.in_(chunk),
            {"reason": "account_replied", "next_due_at": None, "claimed_at": None,
             "updated_at": now},
        )  # fmt: skip
        conn.execute(
            update(tasks)
            .where(tasks.c.enrollment_id.in_(chunk), tasks.c.status == "open")
            .values(
                status="skipped",
                outcome="enrollment_ended",
                notes="enrollment ended: account_replied",
                completed_at=now,
            )
        )
    return len(to_pause), len(to_finish)


# -- one-click unsubscribe -------------------------------------------------------


def unsubscribe_touch(
    conn: Connection,
    runtimes: RuntimeCache,
    touch_key: str,
    now: datetime,
    *,
    source: str = "unsubscribe_link",
) -> bool:
    """Opt out the prospect a touch went to (every cadence, for good); False if no such touch.

    Idempotent: a second click (or a mail client's one-click POST after the
    person clicked the link) finds the prospect opted out and changes nothing.
    """
    key = _safe(touch_key, _ID_MAX)
    if key is None:
        return False
    row = conn.execute(
        select(touches.c.enrollment_id, enrollments.c.prospect_id, prospects.c.opted_out_at)
        .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
        .join(prospects, prospects.c.id == enrollments.c.prospect_id)
        .where(touches.c.key == key)
    ).first()
    if row is None:
        return False
    if row.opted_out_at is not None:
        return True
    stmt = (
        dialect_insert(conn, events)
        .values(
            provider_event_id=event_key(f"unsubscribe:{key}"),
            prospect_id=row.prospect_id,
            enrollment_id=row.enrollment_id,
            touch_key=key,
            type="unsubscribe",
            occurred_at=now,
            source=source[:_SOURCE_MAX],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(events.c.id)
    )
    if conn.execute(stmt).scalar() is not None:
        apply_exit_event(
            conn,
            runtimes,
            row.prospect_id,
            "unsubscribe",
            now,
            source=source[:_SOURCE_MAX],
            touch_key=key,
            record=False,
        )
    return True

