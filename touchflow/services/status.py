"""What ``touchflow status`` reports: the enrollments and touches, then the guards.

Two reads, each on its own connection: :func:`enrollment_status` (enrollments
by cadence, state and step, touches by channel and status, open tasks, the
next due touch) and :func:`guard_status` (paused cadences, mailbox sends in
the rolling windows, suppressions per kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from touchflow.store import guards
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.status import DueWork, StatusReport, status
from touchflow.store.status import due_work as _due_work
from touchflow.store.status import send_failures as _send_failures

__all__ = [
    "DueWork",
    "GuardStatus",
    "StatusReport",
    "due_work",
    "enrollment_status",
    "guard_status",
    "send_failures",
]


@dataclass(frozen=True)
class GuardStatus:
    """The guards now: pauses in force, mailbox usage, suppressions per kind."""

    pauses: list[Any]  # cadence_pauses rows, oldest first
    mailbox_usage: list[tuple[str, int, int]]  # (mailbox, last hour, last 24 h)
    suppressions: dict[str, int]  # kind -> count


def enrollment_status(engine: Engine, runtimes: RuntimeCache) -> StatusReport:
    """Enrollments by cadence, state and step; touches by channel and status; open tasks."""
    with engine.connect() as conn:
        return status(conn, runtimes)


def guard_status(engine: Engine, now: datetime) -> GuardStatus:
    """Paused cadences, each mailbox's sends in the rolling hour and day, suppression counts."""
    with engine.connect() as conn:
        return GuardStatus(
            pauses=guards.list_pauses(conn),
            mailbox_usage=guards.mailbox_usage(conn, now),
            suppressions=guards.count_suppressions(conn),
        )


def send_failures(engine: Engine, since: datetime) -> list[tuple[str, str, int]]:
    """Failed and unknown sends since ``since``, grouped by channel and the connector's message."""
    with engine.connect() as conn:
        return _send_failures(conn, since)


def due_work(engine: Engine, now: datetime) -> DueWork:
    """Whether a tick at ``now`` has work: ``touchflow run`` skips building senders when idle."""
    with engine.connect() as conn:
        return _due_work(conn, now)
