"""Inbound messages (replies): stored once, then turned into enrollment changes.

Replies reach this module as an :class:`~touchflow.domain.replies.InboundMessage`
with its classification: from reps' mailboxes (:mod:`touchflow.services.replies`)
or from SendGrid Inbound Parse. Everything that decides about the store lives
here. Pure SQLAlchemy, ``now`` comes in as an argument.

A message is stored in ``events`` once, on its Message-ID (:func:`message_event_id`):
the same message seen again changes nothing.

Paused enrollments carry the date they should resume in ``next_due_at``
(out-of-office return date, or the end of an account pause); the tick resumes
a paused enrollment once that date is due.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from touchflow.domain.batching import IN_LIMIT
from touchflow.domain.enrollment import Event, State
from touchflow.domain.replies import Classification, InboundMessage
from touchflow.services.account_replies import DEFAULT_ACCOUNT_PAUSE_DAYS, apply_reply
from touchflow.services.event_log import SOURCE_MAX, TYPE_MAX, column_safe, event_key
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import apply_exit_event
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import enrollments, events, prospects, touches
from touchflow.store.transitions import transition_where

__all__ = ["ReplyOutcome", "apply_inbound_message", "message_event_id"]


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
    account_pause_days: int = DEFAULT_ACCOUNT_PAUSE_DAYS,
) -> ReplyOutcome:
    """Store an inbound email once and act on its classification.

    Matching: the touch whose ``Message-ID`` the message answers (In-Reply-To,
    then References, newest first), else the prospect with the sender's
    address. Effects:

    * ``reply``: :func:`~touchflow.services.account_replies.apply_reply`, the
      ``reply`` exit event and then every other prospect at the same account
      follows its own cadence's ``on_account_reply`` (``account_pause_days``
      for ``pause``).
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
            type=_STORED_REPLY_TYPES.get(kind, kind)[:TYPE_MAX],
            occurred_at=message.received_at,
            source=source[:SOURCE_MAX],
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
    src = source[:SOURCE_MAX]
    # The row is stored: "" spares apply_exit_event looking up a touch to record.
    tk = touch_key or ""
    if kind == "reply":
        reply = apply_reply(
            conn, runtimes, prospect_id, now, source=src, touch_key=tk, record=False,
            account_pause_days=account_pause_days,
        )  # fmt: skip
        return ReplyOutcome(
            kind,
            False,
            prospect_id,
            touch_key,
            matched_by,
            ended=reply.ended,
            account_paused=reply.account_paused,
            account_finished=reply.account_finished,
        )
    if kind in ("unsubscribe", "bounce"):
        res = apply_exit_event(
            conn, runtimes, prospect_id, kind, now, source=src, touch_key=tk, record=False
        )
        return ReplyOutcome(kind, False, prospect_id, touch_key, matched_by, ended=res.ended)
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
    if (irt := column_safe((message.in_reply_to or "").strip(), 300)) is not None:
        wanted.append((irt, "in_reply_to"))
    for ref in reversed(message.references):
        if (r := column_safe(ref.strip(), 300)) is not None:
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
    sender = column_safe(message.from_addr.strip().lower(), 320)
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
