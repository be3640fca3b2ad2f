"""A prospect replied: the one rule for what that does, however the reply was recorded.

A reply ends the replier's enrollments whose cadence lists ``reply`` in
``exit_on`` (the exit event), then every colleague at the same account (same
company ``domain``) follows their own cadence's ``on_account_reply``:
``pause`` (paused, ``account_replied``, resumed after ``account_pause_days``),
``finish`` (finished, ``account_replied``, open tasks skipped) or ``continue``.

Every path that records a reply calls :func:`apply_reply`: replies read from
reps' mailboxes and SendGrid Inbound Parse
(:func:`touchflow.services.inbound_messages.apply_inbound_message`), text
replies from the Twilio webhook (:func:`touchflow.services.provider_events.ingest_events`)
and ``touchflow event EMAIL reply``
(:func:`touchflow.services.enrollments.record_exit_event`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from touchflow.domain.batching import chunks
from touchflow.domain.enrollment import Event, can, sources
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import apply_exit_event
from touchflow.store.schema import enrollments, prospects, tasks
from touchflow.store.transitions import transition_where

__all__ = ["DEFAULT_ACCOUNT_PAUSE_DAYS", "ReplyResult", "apply_reply"]

#: ``TOUCHFLOW_REPLIES__ACCOUNT_PAUSE_DAYS``'s default.
DEFAULT_ACCOUNT_PAUSE_DAYS = 14


@dataclass(frozen=True)
class ReplyResult:
    """What a reply did: the replier's enrollments ended or kept, the colleagues' changed."""

    ended: int
    kept: int
    account_paused: int = 0  # colleagues' enrollments paused (on_account_reply: pause)
    account_finished: int = 0  # colleagues' enrollments finished (on_account_reply: finish)


def apply_reply(
    conn: Connection,
    runtimes: RuntimeCache,
    prospect_id: int,
    now: datetime,
    *,
    source: str,
    touch_key: str | None = None,
    record: bool = True,
    account_pause_days: int = DEFAULT_ACCOUNT_PAUSE_DAYS,
) -> ReplyResult:
    """Record a reply of ``prospect_id`` and apply it (see the module docstring).

    ``touch_key`` and ``record`` are :func:`~touchflow.store.enrollments.apply_exit_event`'s:
    ``record=False`` when the caller already stored the event row. Runs in the
    caller's transaction.
    """
    res = apply_exit_event(
        conn, runtimes, prospect_id, "reply", now, source=source, touch_key=touch_key,
        record=record,
    )  # fmt: skip
    paused, finished = _account_rule(conn, runtimes, prospect_id, now, account_pause_days)
    return ReplyResult(res.ended, res.kept, paused, finished)


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
