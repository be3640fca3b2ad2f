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
from touchflow.store.status import StatusReport, status

__all__ = ["GuardStatus", "StatusReport", "enrollment_status", "guard_status"]


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
