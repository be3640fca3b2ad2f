"""After-call summaries in the store: one per call, and one row per tracker moment.

:func:`save_summary` replaces what a call had (a second summary of the same call is
the same row, its tracker moments rewritten), so summarising twice stores one
summary. The summary's JSON is :meth:`CallSummary.to_dict`; the moments are kept
flat too (``call_tracker_hits``) for reporting and for ``tracker()`` conditions,
which read them per batch of enrollments (:mod:`touchflow.store.enrollments`).

Functions take a ``Connection`` inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select

from touchflow.domain.guidance.summary import CallSummary
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import (
    call_segments,
    call_summaries,
    call_tracker_hits,
    call_transcripts,
    enrollments,
    tasks,
)

__all__ = [
    "CallOwner",
    "StoredSummary",
    "call_owner",
    "calls_to_summarise",
    "save_summary",
    "summary_of_call",
    "summary_of_task",
]


@dataclass(frozen=True)
class CallOwner:
    """Whose call it was: its task, the task's enrollment and prospect (None: not a task's)."""

    task_id: int | None
    enrollment_id: int | None
    prospect_id: int | None
    touch_key: str | None


@dataclass(frozen=True)
class StoredSummary:
    """A stored summary with the task it belongs to."""

    call_sid: str
    task_id: int | None
    enrollment_id: int | None
    prospect_id: int | None
    summary: CallSummary
    created_at: datetime


def call_owner(conn: Connection, task_id: int | None) -> CallOwner:
    """The task's enrollment and prospect; all None when ``task_id`` names no task."""
    if task_id is None:
        return CallOwner(None, None, None, None)
    row = conn.execute(
        select(tasks.c.id, tasks.c.enrollment_id, tasks.c.touch_key, enrollments.c.prospect_id)
        .join(enrollments, enrollments.c.id == tasks.c.enrollment_id)
        .where(tasks.c.id == task_id)
    ).first()
    if row is None:
        return CallOwner(None, None, None, None)
    return CallOwner(row.id, row.enrollment_id, row.prospect_id, row.touch_key)


def save_summary(conn: Connection, summary: CallSummary, owner: CallOwner, now: datetime) -> bool:
    """Store ``summary`` (replacing the call's earlier one); whether it is the call's first."""
    values = {
        "task_id": owner.task_id,
        "enrollment_id": owner.enrollment_id,
        "prospect_id": owner.prospect_id,
        "summary": summary.to_dict(),
        "ended_at": summary.ended_at,
    }
    ins = dialect_insert(conn, call_summaries).values(
        call_sid=summary.call_sid, created_at=now, **values
    )
    first = (
        conn.execute(
            ins.on_conflict_do_nothing(index_elements=["call_sid"]).returning(
                call_summaries.c.call_sid
            )
        ).first()
        is not None
    )
    if not first:
        conn.execute(
            call_summaries.update()
            .where(call_summaries.c.call_sid == summary.call_sid)
            .values(**values)
        )
    conn.execute(delete(call_tracker_hits).where(call_tracker_hits.c.call_sid == summary.call_sid))
    rows = [
        {
            "call_sid": summary.call_sid,
            "task_id": owner.task_id,
            "enrollment_id": owner.enrollment_id,
            "tracker": tracker.tracker,
            "said_by": moment.said_by,
            "at": moment.at,
        }
        for tracker in summary.trackers
        for moment in tracker.moments
    ]
    if rows:
        conn.execute(insert(call_tracker_hits), rows)
    return first


def _stored(row: Any) -> StoredSummary:
    return StoredSummary(
        row.call_sid,
        row.task_id,
        row.enrollment_id,
        row.prospect_id,
        CallSummary.from_dict(row.summary),
        row.created_at,
    )


def summary_of_call(conn: Connection, call_sid: str) -> StoredSummary | None:
    """The stored summary of a call, or None."""
    row = conn.execute(select(call_summaries).where(call_summaries.c.call_sid == call_sid)).first()
    return None if row is None else _stored(row)


def summary_of_task(conn: Connection, task_id: int) -> list[StoredSummary]:
    """The summaries of a task's calls (a task may be called more than once), oldest first."""
    rows = conn.execute(
        select(call_summaries)
        .where(call_summaries.c.task_id == task_id)
        .order_by(call_summaries.c.ended_at, call_summaries.c.call_sid)
    )
    return [_stored(row) for row in rows]


def calls_to_summarise(
    conn: Connection, idle_before: datetime, *, limit: int = 500
) -> Sequence[str]:
    """Calls that need a summary and have none: ended ones, and live ones gone quiet.

    A live call whose newest segment (or whose start, with no segment) is older than
    ``idle_before`` was dropped without a stop event.
    """
    newest = (
        select(func.max(call_segments.c.at))
        .where(call_segments.c.call_sid == call_transcripts.c.call_sid)
        .scalar_subquery()
    )
    summarised = exists().where(call_summaries.c.call_sid == call_transcripts.c.call_sid)
    q = (
        select(call_transcripts.c.call_sid)
        .where(
            ~summarised,
            or_(
                call_transcripts.c.status == "ended",
                and_(
                    call_transcripts.c.status == "live",
                    func.coalesce(newest, call_transcripts.c.started_at) < idle_before,
                ),
            ),
        )
        .order_by(call_transcripts.c.started_at, call_transcripts.c.call_sid)
        .limit(limit)
    )
    return list(conn.execute(q).scalars())
