"""Status in the store: the counts ``touchflow status`` reports.

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction, so
a CLI command or a flow decides what is atomic. Time comes in as ``now``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, func, select

from touchflow.domain.enrollment import OPEN
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.schema import enrollments, tasks, touches

__all__ = ["DueWork", "InFlight", "StatusReport", "due_work", "send_failures", "status"]


@dataclass(frozen=True)
class InFlight:
    """One cadence's enrollments that a tick claimed and has not settled yet.

    Their touches are ``sending``: handed to the provider, or about to be. A
    claim older than the lease was left by a worker that died; the next tick
    marks its touches ``unknown``.
    """

    cadence_id: str
    enrollments: int
    sending: int  # their touches in `sending`
    oldest_claim: datetime  # wall clock, when the oldest of them was claimed


@dataclass
class StatusReport:
    enrollments_by_state: Counter[tuple[str, str, str]]  # (cadence, state, reason), unclaimed
    active_by_step: Counter[tuple[str, str]]  # (cadence, step id)
    touches_by_status: Counter[tuple[str, str]]  # (channel, status)
    open_tasks: int
    next_due_at: datetime | None
    in_flight: list[InFlight] = field(default_factory=list)  # by cadence


def status(conn: Connection, runtimes: RuntimeCache) -> StatusReport:
    """Counts for ``touchflow status``: enrollments by state and step, touches by status.

    A claimed enrollment is counted in ``in_flight``, not under its state: a
    ``pending`` one being sent right now is not waiting for anything.
    """
    by_state: Counter[tuple[str, str, str]] = Counter()
    # Rows unpack as `object` to mypy: SQLAlchemy cannot type untyped Table columns.
    for cid, state, reason, n in cast(
        "Iterable[tuple[str, str, str | None, int]]",
        conn.execute(
            select(
                enrollments.c.cadence_id, enrollments.c.state, enrollments.c.reason, func.count()
            )
            .where(enrollments.c.claimed_at.is_(None))
            .group_by(enrollments.c.cadence_id, enrollments.c.state, enrollments.c.reason)
        ),
    ):
        # "missing_data:prospect.title" is one reason per field; keep the field.
        by_state[(cid, state, reason or "")] += n
    by_step: Counter[tuple[str, str]] = Counter()
    for cid, version, idx, n in cast(
        "Iterable[tuple[str, str, int, int]]",
        conn.execute(
            select(
                enrollments.c.cadence_id,
                enrollments.c.cadence_version,
                enrollments.c.step_index,
                func.count(),
            )
            .where(enrollments.c.state.in_([s.value for s in OPEN]))
            .group_by(
                enrollments.c.cadence_id, enrollments.c.cadence_version, enrollments.c.step_index
            )
        ),
    ):
        steps = runtimes.get(conn, version).cadence.steps
        by_step[(cid, steps[idx].id if idx < len(steps) else "(end)")] += n
    by_touch: Counter[tuple[str, str]] = Counter()
    for channel, st, n in cast(
        "Iterable[tuple[str, str, int]]",
        conn.execute(
            select(touches.c.channel, touches.c.status, func.count()).group_by(
                touches.c.channel, touches.c.status
            )
        ),
    ):
        by_touch[(channel, st)] += n
    open_tasks = conn.execute(
        select(func.count()).select_from(tasks).where(tasks.c.status == "open")
    ).scalar_one()
    next_due = conn.execute(
        select(func.min(enrollments.c.next_due_at)).where(enrollments.c.claimed_at.is_(None))
    ).scalar()
    return StatusReport(by_state, by_step, by_touch, open_tasks, next_due, in_flight(conn))


def in_flight(conn: Connection) -> list[InFlight]:
    """Claimed enrollments per cadence, their ``sending``/``queued`` touches, the oldest claim."""
    e, t = enrollments.c, touches.c
    # A comprehension, not dict(): a result has keys() and would be read as a mapping.
    sending: dict[str, int] = {
        cid: int(n)
        for cid, n in cast(
            "Iterable[tuple[str, int]]",
            conn.execute(
                select(e.cadence_id, func.count())
                .select_from(touches.join(enrollments, e.id == t.enrollment_id))
                .where(t.status.in_(("queued", "sending")))
                .group_by(e.cadence_id)
            ),
        )
    }
    rows = cast(
        "Iterable[tuple[str, int, datetime]]",
        conn.execute(
            select(e.cadence_id, func.count(), func.min(e.claimed_at))
            .where(e.claimed_at.is_not(None))
            .group_by(e.cadence_id)
            .order_by(e.cadence_id)
        ),
    )
    return [InFlight(cid, int(n), sending.get(cid, 0), oldest) for cid, n, oldest in rows]


def send_failures(conn: Connection, since: datetime) -> list[tuple[str, str, int]]:
    """Why sends failed since ``since`` (wall clock): ``(channel, error, count)``, most first.

    The error is the connector's own message (``smtp.send: connection refused``),
    so a hundred failures with one cause are one line.
    """
    n = func.count().label("n")
    rows = cast(
        "Iterable[tuple[str, str, int]]",
        conn.execute(
            select(touches.c.channel, touches.c.error, n)
            .where(
                touches.c.status.in_(["failed", "unknown"]),
                touches.c.error.is_not(None),
                touches.c.claimed_at >= since,
            )
            .group_by(touches.c.channel, touches.c.error)
            .order_by(n.desc(), touches.c.channel, touches.c.error)
        ),
    )
    return [(channel, error, int(count)) for channel, error, count in rows]


@dataclass(frozen=True)
class DueWork:
    """Whether a tick at some instant has anything to do (two indexed reads)."""

    due: int  # unclaimed enrollments due by then (a paused cadence's too)
    claimed: int  # enrollments claimed now: in flight, or left by a crashed worker
    next_due_at: datetime | None  # the soonest due time, when nothing is due yet

    @property
    def idle(self) -> bool:
        """Nothing to send and no claim to recover: a tick would only read."""
        return self.due == 0 and self.claimed == 0


def due_work(conn: Connection, now: datetime) -> DueWork:
    """What a tick at ``now`` would find: due enrollments, outstanding claims, the next due time."""
    e = enrollments.c
    due = conn.execute(
        select(func.count()).where(e.next_due_at <= now, e.claimed_at.is_(None))
    ).scalar_one()
    claimed = conn.execute(select(func.count()).where(e.claimed_at.is_not(None))).scalar_one()
    nxt = conn.execute(select(func.min(e.next_due_at)).where(e.claimed_at.is_(None))).scalar()
    return DueWork(int(due), int(claimed), nxt)
