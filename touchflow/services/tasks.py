"""The SDRs' tasks: list them, show one, complete one (the enrollment moves on).

Each function is one use case in its own transaction (a read-only connection
for the reads). Completing a task is :func:`touchflow.store.tasks.complete_tasks`:
``meeting_booked`` ends the prospect's enrollments, ``not_interested`` ends
this one, every other outcome advances it to its next step, timed from ``at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from touchflow.domain.cadence import TASK_OUTCOMES
from touchflow.domain.engine import SenderInfo
from touchflow.store import tasks as task_store
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.schema import enrollments, prospects, tasks
from touchflow.store.tasks import TaskDone

__all__ = [
    "TASK_OUTCOMES",
    "TaskCompletion",
    "TaskDone",
    "complete_tasks",
    "list_tasks",
    "task_with_prospect",
]


def list_tasks(
    engine: Engine,
    *,
    owner: str | None = None,
    status: str = "open",
    due_before: datetime | None = None,
) -> list[Any]:
    """Tasks with their prospect's email, name, phone, country and time zone, soonest due first.

    ``owner``: one SDR's only; ``status``: ``open``, ``done``, ``skipped`` or
    ``all``; ``due_before``: only those due before that instant.
    """
    with engine.connect() as conn:
        return task_store.list_tasks(conn, owner=owner, status=status, due_before=due_before)


@dataclass(frozen=True)
class TaskCompletion:
    """What ``task done`` did: the tasks it completed, and the ids it could not."""

    done: list[TaskDone] = field(default_factory=list)
    already: list[Any] = field(default_factory=list)  # task rows closed before (done/skipped)
    missing: list[int] = field(default_factory=list)  # no task has these ids


def complete_tasks(
    engine: Engine,
    runtimes: RuntimeCache,
    sender: SenderInfo,
    task_ids: Sequence[int] | None,
    *,
    outcome: str,
    at: datetime,
    notes: str | None = None,
    owner: str | None = None,
) -> TaskCompletion:
    """Complete (or skip) open tasks with ``outcome``, in one transaction; what it did to each.

    ``task_ids`` None: every open task due by ``at`` (``owner``'s only, when
    given). ``outcome`` is one of :data:`TASK_OUTCOMES`; ``sender`` gives what
    the enrollment's own sender row does not (the defaults). A task already
    closed is reported as such and not touched again, so repeating a command
    is harmless.
    """
    with engine.begin() as conn:
        if task_ids is None:
            due = task_store.list_tasks(conn, owner=owner, status="open")
            task_ids = [t.id for t in due if t.due_at <= at]
        done = task_store.finish_tasks(
            conn, runtimes, sender, task_ids, outcome=outcome, at=at, notes=notes
        )
        completed = {d.task_id for d in done}
        rest = [i for i in task_ids if i not in completed]
        found = {r.id: r for r in task_store.task_rows(conn, rest)} if rest else {}
    return TaskCompletion(
        done=done,
        already=[found[i] for i in rest if i in found],
        missing=[i for i in rest if i not in found],
    )


def task_with_prospect(engine: Engine, task_id: int) -> Any | None:
    """The task row with its prospect's email, name, company, phone, country and time zone.

    None when there is no task ``task_id``. Fields: every ``tasks`` column plus
    ``email``, ``first_name``, ``last_name``, ``company``, ``phone``,
    ``country`` and ``timezone``.
    """
    p = prospects.c
    q = (
        select(tasks, p.email, p.first_name, p.last_name, p.company, p.phone, p.country, p.timezone)
        .join(enrollments, enrollments.c.id == tasks.c.enrollment_id)
        .join(prospects, p.id == enrollments.c.prospect_id)
        .where(tasks.c.id == task_id)
    )
    with engine.connect() as conn:
        return conn.execute(q).one_or_none()
