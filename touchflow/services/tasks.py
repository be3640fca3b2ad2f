"""The SDRs' tasks: list them, show one, complete one (the enrollment moves on).

Each function is one use case in its own transaction (a read-only connection
for the reads). Completing a task is :func:`touchflow.store.tasks.complete_tasks`:
``meeting_booked`` ends the prospect's enrollments, ``not_interested`` ends
this one, every other outcome advances it to its next step, timed from ``at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from touchflow.domain.cadence import TASK_OUTCOMES
from touchflow.domain.engine import SenderInfo
from touchflow.store import tasks as task_store
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.schema import enrollments, prospects, tasks

__all__ = ["TASK_OUTCOMES", "complete_task", "list_tasks", "task_with_prospect"]


def list_tasks(engine: Engine, *, owner: str | None = None, status: str = "open") -> list[Any]:
    """Tasks with their prospect's email, soonest due first.

    ``owner``: one SDR's only; ``status``: ``open``, ``done``, ``skipped`` or ``all``.
    """
    with engine.connect() as conn:
        return task_store.list_tasks(conn, owner=owner, status=status)


def complete_task(
    engine: Engine,
    runtimes: RuntimeCache,
    sender: SenderInfo,
    task_id: int,
    outcome: str,
    at: datetime,
    notes: str | None = None,
) -> bool:
    """Complete (or skip) one open task with ``outcome``; False when no open task has that id.

    ``outcome`` is one of :data:`TASK_OUTCOMES`; ``sender`` gives what the
    enrollment's own sender row does not (the defaults).
    """
    with engine.begin() as conn:
        done = task_store.complete_tasks(
            conn, runtimes, sender, [task_id], outcome=outcome, at=at, notes=notes
        )
    return bool(done)


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
