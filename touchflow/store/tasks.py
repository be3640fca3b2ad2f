"""Tasks in the store: list them, complete them and move their enrollments on.

(An enrollment that ends skips its open tasks: see
:func:`touchflow.store.enrollments.apply_exit_event`.)

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction, so
a CLI command or a flow decides what is atomic. Time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

__all__ = [
    "TASK_OUTCOMES",
    "TaskDone",
    "complete_tasks",
    "finish_tasks",
    "list_tasks",
    "task_rows",
]


def list_tasks(
    conn: Connection,
    *,
    owner: str | None = None,
    status: str = "open",
    due_before: datetime | None = None,
) -> list[Any]:
    """Tasks with their prospect's email, name, phone, country and time zone, soonest first.

    ``due_before``: only tasks due before that instant.
    """
    p = prospects.c
    q = (
        select(tasks, p.email, p.first_name, p.last_name, p.phone, p.country, p.timezone)
        .join(enrollments, enrollments.c.id == tasks.c.enrollment_id)
        .join(prospects, p.id == enrollments.c.prospect_id)
        .order_by(tasks.c.due_at, tasks.c.id)
    )
    if status != "all":
        q = q.where(tasks.c.status == status)
    if owner:
        q = q.where(tasks.c.owner_email == owner)
    if due_before is not None:
        q = q.where(tasks.c.due_at < due_before)
    return list(conn.execute(q))


def task_rows(conn: Connection, task_ids: Sequence[int]) -> list[Any]:
    """The tasks with these ids, whatever their status."""
    return list(conn.execute(select(tasks).where(tasks.c.id.in_(list(task_ids)))))


@dataclass(frozen=True)
class TaskDone:
    """One completed task and what it did to its enrollment.

    ``effect``: ``advanced`` (to ``step_id`` due at ``next_due_at``),
    ``finished`` (``reason``: completed, the last step; or not_interested),
    ``ended`` (meeting_booked ended ``ended`` enrollments of the prospect, this one
    among them; when this cadence does not exit on a meeting it advances or finishes
    instead, ``ended`` counting the others), or
    ``unchanged`` (the enrollment had already left the task's step: its
    ``state`` and ``reason`` say where it is).
    """

    task_id: int
    title: str
    enrollment_id: int
    effect: str
    state: str
    reason: str | None = None
    step_id: str | None = None
    next_due_at: datetime | None = None
    ended: int = 0


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

    :func:`finish_tasks`, counted.
    """
    return len(
        finish_tasks(conn, runtimes, defaults, task_ids, outcome=outcome, at=at, notes=notes)
    )


def finish_tasks(
    conn: Connection,
    runtimes: RuntimeCache,
    defaults: SenderInfo,
    task_ids: Sequence[int],
    *,
    outcome: str,
    at: datetime,
    notes: str | None = None,
) -> list[TaskDone]:
    """Complete (or skip) open tasks and move their enrollments on; what each did.

    ``meeting_booked`` ends the prospect's enrollments like the exit event;
    ``not_interested`` finishes this enrollment; every other outcome advances it
    to the next step, timed from ``at`` (the task's completion). Ids that are
    not open tasks are left out of the answer.
    """
    if outcome not in TASK_OUTCOMES:
        raise TouchflowError(f"unknown outcome {outcome!r}; expected one of {list(TASK_OUTCOMES)}")
    rows = list(
        conn.execute(select(tasks).where(tasks.c.id.in_(list(task_ids)), tasks.c.status == "open"))
    )
    if not rows:
        return []
    status = "skipped" if outcome == "skipped" else "done"
    conn.execute(
        update(tasks)
        .where(tasks.c.id.in_([r.id for r in rows]))
        .values(status=status, outcome=outcome, notes=notes, completed_at=at)
    )
    enr = {r.id: r for r in enrollment_rows(conn, [t.enrollment_id for t in rows])}
    views = load_views(conn, list(enr.values()), defaults)
    updates: list[dict[str, Any]] = []
    done: list[TaskDone] = []
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
        said = {"task_id": task.id, "title": task.title, "enrollment_id": row.id}
        if row.state != State.ACTIVE.value or not (row.reason or "").startswith("waiting_task"):
            # ended meanwhile (reply, opt-out): nothing to advance
            done.append(TaskDone(**said, effect="unchanged", state=row.state, reason=row.reason))
            continue
        ended_others = 0
        if outcome == "meeting_booked":
            result = apply_exit_event(
                conn,
                runtimes,
                row.prospect_id,
                "meeting_booked",
                at,
                source="task",
                touch_key=task.touch_key,
            )
            now_state = conn.execute(
                select(enrollments.c.state).where(enrollments.c.id == row.id)
            ).scalar()
            if now_state != row.state:
                done.append(
                    TaskDone(
                        **said,
                        effect="ended",
                        state=State.FINISHED.value,
                        reason="meeting_booked",
                        ended=result.ended,
                    )
                )
                continue
            # This cadence does not exit on a meeting (not in its exit_on): the task is
            # done, so the enrollment goes on like after any other outcome.
            ended_others = result.ended
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
            finished = transition(row.state, Event.FINISH).value
            done.append(
                TaskDone(
                    **said, effect="finished", state=finished, reason=reason, ended=ended_others
                )
            )
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
            steps = runtime.cadence.steps
            done.append(
                TaskDone(
                    **said,
                    effect="advanced",
                    state=row.state,
                    step_id=f"{nxt[0] + 1}. {steps[nxt[0]].id}",
                    next_due_at=nxt[1],
                    ended=ended_others,
                )
            )
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
    return done
