"""Tasks in the store: list them, complete them and move their enrollments on.

(An enrollment that ends skips its open tasks: see
:func:`touchflow.store.enrollments.apply_exit_event`.)

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction, so
a CLI command or a flow decides what is atomic. Time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from touchflow.domain.cadence import TASK_OUTCOMES
from touchflow.domain.engine import SenderInfo
from touchflow.domain.enrollment import Event, State, transition
from touchflow.domain.phones import e164_or_raw
from touchflow.errors import TouchflowError
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import (
    apply_exit_event,
    enrollment_rows,
    load_views,
    update_enrollments,
)
from touchflow.store.schema import enrollments, events, prospects, tasks
from touchflow.store.suppressions import add_suppression

__all__ = ["TASK_OUTCOMES", "complete_tasks", "list_tasks"]


def list_tasks(conn: Connection, *, owner: str | None = None, status: str = "open") -> list[Any]:
    q = (
        select(tasks, prospects.c.email)
        .join(enrollments, enrollments.c.id == tasks.c.enrollment_id)
        .join(prospects, prospects.c.id == enrollments.c.prospect_id)
        .order_by(tasks.c.due_at, tasks.c.id)
    )
    if status != "all":
        q = q.where(tasks.c.status == status)
    if owner:
        q = q.where(tasks.c.owner_email == owner)
    return list(conn.execute(q))


def complete_tasks(
    conn: Connection,
    runtimes: RuntimeCache,
    defaults: SenderInfo,
    task_ids: Sequence[int],
    *,
    outcome: str,
    at: datetime,
    notes: str | None = None,
) -> int:
    """Complete (or skip) open tasks and move their enrollments on; returns how many.

    ``meeting_booked`` ends the prospect's enrollments like the exit event;
    ``not_interested`` finishes this enrollment; every other outcome advances it
    to the next step, timed from ``at`` (the task's completion).
    """
    if outcome not in TASK_OUTCOMES:
        raise TouchflowError(f"unknown outcome {outcome!r}; expected one of {list(TASK_OUTCOMES)}")
    rows = list(
        conn.execute(select(tasks).where(tasks.c.id.in_(list(task_ids)), tasks.c.status == "open"))
    )
    if not rows:
        return 0
    status = "skipped" if outcome == "skipped" else "done"
    conn.execute(
        update(tasks)
        .where(tasks.c.id.in_([r.id for r in rows]))
        .values(status=status, outcome=outcome, notes=notes, completed_at=at)
    )
    enr = {r.id: r for r in enrollment_rows(conn, [t.enrollment_id for t in rows])}
    views = load_views(conn, list(enr.values()), defaults)
    updates: list[dict[str, Any]] = []
    for task in rows:
        conn.execute(
            events.insert().values(
                prospect_id=enr[task.enrollment_id].prospect_id,
                enrollment_id=task.enrollment_id,
                touch_key=task.touch_key,
                type="skipped" if status == "skipped" else "completed",
                occurred_at=at,
                source="task",
                payload={"outcome": outcome},
                created_at=at,
            )
        )
        row = enr[task.enrollment_id]
        if outcome == "wrong_number" and row.phone:
            # Never text or call that number again for this prospect (or anyone).
            add_suppression(
                conn,
                "phone",
                e164_or_raw(row.phone, row.country),
                reason="wrong_number",
                source="task",
                now=at,
            )
        if row.state != State.ACTIVE.value or not (row.reason or "").startswith("waiting_task"):
            continue  # ended meanwhile (reply, opt-out): nothing to advance
        if outcome == "meeting_booked":
            apply_exit_event(
                conn,
                runtimes,
                row.prospect_id,
                "meeting_booked",
                at,
                source="task",
                touch_key=task.touch_key,
            )
            continue
        runtime = runtimes.get(conn, row.cadence_version)
        base = {
            "b_id": row.id,
            "attempt": 1,
            "claimed_at": None,
            "last_executed_at": at,
            "updated_at": at,
        }
        nxt = (
            None
            if outcome == "not_interested"
            else runtime.after_execution(views[row.id], row.step_index, at)
        )
        if nxt is None:
            reason = "not_interested" if outcome == "not_interested" else "completed"
            updates.append(
                {
                    **base,
                    "state": transition(row.state, Event.FINISH).value,
                    "reason": reason,
                    "step_index": row.step_index,
                    "next_due_at": None,
                }
            )
        else:
            updates.append(
                {
                    **base,
                    "state": transition(row.state, Event.ADVANCE).value,
                    "reason": None,
                    "step_index": nxt[0],
                    "next_due_at": nxt[1],
                }
            )
    update_enrollments(conn, updates)
    return len(rows)
