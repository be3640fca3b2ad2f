"""Routing against the database: load the fairness ledger, decide, record, accept, reroute.

Every function runs inside the caller's transaction (``engine.begin()``), so routing a lead,
writing its assignment, updating the ledger and setting ``prospects.ae_email`` commit together
or not at all.

Two routers at once (two flow runs, two workers) must not both read the same ledger and hand
out leads from the same stale counts. Before reading anything, :func:`_lock_ledger` locks the
ledger rows of every pool of the routing config with ``SELECT ... FOR UPDATE`` (in pool and
member order, so lockers never deadlock), so routers serialize on PostgreSQL; a pool that has
no rows yet gets them first with ``INSERT ... ON CONFLICT DO NOTHING`` (a second inserter waits
for the first to commit). On SQLite, which has no row locks, a no-op UPDATE takes the database
write lock first, which serializes writers the same way. Today's counts and open assignments
are read after the lock, so they include what the other router just committed.

Statuses of ``route_assignments``: ``assigned`` -> ``accepted`` (:func:`accept`) or
``assigned`` -> ``rerouted`` (:func:`reroute_overdue`, after ``sla_due_at``; a new
``assigned`` row for the next assignee is written in the same transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, select, update

from touchflow.errors import TouchflowError, TransitionError
from touchflow.routing import Decision, LeadInput, LedgerEntry, Router, RoutingState
from touchflow.store.repo import dialect_insert
from touchflow.store.schema import accounts, prospects, route_assignments, routing_ledger

__all__ = ["Assignment", "Reroute", "accept", "load_state", "reroute_overdue", "route_prospects"]

#: Statuses that mean a prospect is routed (not to be routed again by route_prospects).
OPEN = ("assigned", "accepted")


@dataclass(frozen=True)
class Assignment:
    """One ``route_assignments`` row."""

    id: int
    prospect_id: int
    assignee_email: str
    rule: str
    status: str
    assigned_at: datetime
    sla_due_at: datetime | None
    accepted_at: datetime | None

    @property
    def within_sla(self) -> bool | None:
        """Accepted before the deadline? None while not accepted or without an SLA."""
        if self.accepted_at is None or self.sla_due_at is None:
            return None
        return self.accepted_at <= self.sla_due_at


@dataclass(frozen=True)
class Reroute:
    """A lead taken from ``missed_by`` after its SLA and routed again (``decision``)."""

    assignment_id: int
    prospect_id: int
    missed_by: str
    decision: Decision


def _lock_ledger(conn: Connection, router: Router, now: datetime) -> None:
    pools = sorted(router.pools)
    if conn.dialect.name == "sqlite":
        # Takes SQLite's write lock now, before the reads below (see module docstring).
        conn.execute(
            update(routing_ledger)
            .where(routing_ledger.c.pool == "", routing_ledger.c.member_email == "")
            .values(updated_at=now)
        )
    seen = set(
        conn.execute(
            select(routing_ledger.c.pool).where(routing_ledger.c.pool.in_(pools)).distinct()
        ).scalars()
    )
    # A pool's first use: everyone starts at zero (see "Fairness" in touchflow.routing).
    fresh = [
        {"pool": p, "member_email": m.email, "assigned": 0, "credit": 0.0, "updated_at": now}
        for p in pools
        if p not in seen
        for m in sorted(router.pools[p], key=lambda m: m.email)
    ]
    for row in fresh:  # one by one, in lock order
        conn.execute(
            dialect_insert(conn, routing_ledger)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["pool", "member_email"])
        )


def load_state(
    conn: Connection, router: Router, now: datetime, *, lock: bool = True
) -> RoutingState:
    """The ledger of the config's pools and today's assignment counts, locked for update."""
    if lock:
        _lock_ledger(conn, router, now)
    q = select(routing_ledger).where(routing_ledger.c.pool.in_(sorted(router.pools)))
    q = q.order_by(routing_ledger.c.pool, routing_ledger.c.member_email)
    if lock:
        q = q.with_for_update()
    state = RoutingState()
    for row in conn.execute(q):
        state.ledger[(row.pool, row.member_email)] = LedgerEntry(row.assigned, row.credit)
    # The earliest local midnight of anyone: counts are then cut per member.
    since = now - timedelta(hours=26)
    recent = conn.execute(
        select(route_assignments.c.assignee_email, route_assignments.c.assigned_at).where(
            route_assignments.c.assigned_at >= since, route_assignments.c.assigned_at <= now
        )
    )
    state.today = router.today_counts(((r[0], r[1]) for r in recent), now)
    return state


def _save_ledger(conn: Connection, state: RoutingState, now: datetime) -> None:
    if not state.changed:
        return
    for pool, email in sorted(state.changed):
        entry = state.ledger[(pool, email)]
        stmt = dialect_insert(conn, routing_ledger).values(
            pool=pool,
            member_email=email,
            assigned=entry.assigned,
            credit=entry.credit,
            updated_at=now,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["pool", "member_email"],
                set_={
                    "assigned": stmt.excluded.assigned,
                    "credit": stmt.excluded.credit,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )
    state.changed.clear()


def _leads(conn: Connection, ids: Sequence[int]) -> dict[int, LeadInput]:
    q = (
        select(
            prospects.c.id,
            prospects.c.email,
            prospects.c.domain,
            prospects.c.country,
            prospects.c.score,
            prospects.c.grade,
            accounts.c.domain.label("account_domain"),
            accounts.c.country.label("account_country"),
            accounts.c.employees,
            accounts.c.owner_email,
        )
        .select_from(prospects.outerjoin(accounts, prospects.c.account_id == accounts.c.id))
        .where(prospects.c.id.in_(ids))
    )
    return {
        r.id: LeadInput(
            email=r.email,
            domain=r.account_domain or r.domain,
            country=(r.country or r.account_country or "").upper() or None,
            employees=r.employees,
            score=r.score,
            grade=r.grade,
            account_owner=r.owner_email,
        )
        for r in conn.execute(q)
    }


def _record(conn: Connection, prospect_id: int, d: Decision, now: datetime) -> int:
    new_id = conn.execute(
        route_assignments.insert()
        .values(
            prospect_id=prospect_id,
            assignee_email=d.assignee,
            rule=d.rule,
            reason=d.reason,
            status="assigned",
            assigned_at=now,
            sla_due_at=d.sla_due_at,
        )
        .returning(route_assignments.c.id)
    ).scalar_one()
    conn.execute(
        update(prospects)
        .where(prospects.c.id == prospect_id)
        .values(ae_email=None if d.is_queue else d.assignee, updated_at=now)
    )
    return int(new_id)


def route_prospects(
    conn: Connection, router: Router, prospect_ids: Iterable[int], now: datetime
) -> list[Decision]:
    """Route the prospects that have no open assignment; return their decisions, in id order.

    Prospects already assigned or accepted (a rerun, another router) and unknown ids are
    skipped, so running it twice routes nobody twice.
    """
    ids = sorted(set(prospect_ids))
    if not ids:
        return []
    state = load_state(conn, router, now)
    routed = set(
        conn.execute(
            select(route_assignments.c.prospect_id).where(
                route_assignments.c.prospect_id.in_(ids), route_assignments.c.status.in_(OPEN)
            )
        ).scalars()
    )
    leads = _leads(conn, [i for i in ids if i not in routed])
    decisions = []
    for pid in sorted(leads):
        d = router.route(leads[pid], state, now)
        _record(conn, pid, d, now)
        decisions.append(d)
    _save_ledger(conn, state, now)
    return decisions


def _assignment(row: Any) -> Assignment:
    return Assignment(
        id=row.id,
        prospect_id=row.prospect_id,
        assignee_email=row.assignee_email,
        rule=row.rule,
        status=row.status,
        assigned_at=row.assigned_at,
        sla_due_at=row.sla_due_at,
        accepted_at=row.accepted_at,
    )


def accept(
    conn: Connection,
    *,
    now: datetime,
    prospect_id: int | None = None,
    assignment_id: int | None = None,
) -> Assignment:
    """The assignee accepts: by assignment id, or the prospect's latest assignment.

    Accepting twice returns the accepted assignment unchanged. A rerouted assignment cannot
    be accepted (TransitionError: the lead now belongs to someone else); an accept after the
    deadline but before the reroute ran is recorded (``within_sla`` is False).
    """
    if (prospect_id is None) == (assignment_id is None):
        raise TypeError("accept() needs exactly one of prospect_id and assignment_id")
    q = select(route_assignments)
    if assignment_id is not None:
        q = q.where(route_assignments.c.id == assignment_id)
    else:
        q = q.where(route_assignments.c.prospect_id == prospect_id)
        q = q.order_by(route_assignments.c.id.desc()).limit(1)
    row = conn.execute(q.with_for_update()).first()
    if row is None:
        what = f"assignment {assignment_id}" if assignment_id else f"prospect {prospect_id}"
        raise TouchflowError(f"no route assignment for {what}")
    if row.status == "accepted":
        return _assignment(row)
    if row.status != "assigned":
        raise TransitionError("accept", row.status)
    conn.execute(
        update(route_assignments)
        .where(route_assignments.c.id == row.id, route_assignments.c.status == "assigned")
        .values(status="accepted", accepted_at=now)
    )
    row = conn.execute(select(route_assignments).where(route_assignments.c.id == row.id)).one()
    return _assignment(row)


def reroute_overdue(conn: Connection, router: Router, now: datetime) -> list[Reroute]:
    """Take back every lead not accepted by its ``sla_due_at`` and route it again.

    The missed assignment becomes ``rerouted`` (``rerouted_at`` set, the miss appended to its
    reason); the new one excludes everyone who already missed this lead. The member who missed
    keeps the lead in their ledger count (see "Fairness" in touchflow.routing).
    """
    state = load_state(conn, router, now)
    q = (
        select(route_assignments)
        .where(
            and_(
                route_assignments.c.status == "assigned",
                route_assignments.c.sla_due_at.is_not(None),
                route_assignments.c.sla_due_at <= now,
            )
        )
        .order_by(route_assignments.c.sla_due_at, route_assignments.c.id)
    )
    overdue = list(conn.execute(q.with_for_update(skip_locked=True)))
    if not overdue:
        return []
    pids = sorted({r.prospect_id for r in overdue})
    missed: dict[int, set[str]] = {p: set() for p in pids}
    for pid, email in conn.execute(
        select(route_assignments.c.prospect_id, route_assignments.c.assignee_email).where(
            route_assignments.c.prospect_id.in_(pids), route_assignments.c.status == "rerouted"
        )
    ):
        missed[pid].add(email)
    leads = _leads(conn, pids)
    out = []
    for row in overdue:
        late = int((now - row.sla_due_at).total_seconds() // 60)
        note = f"; SLA missed: not accepted by {row.sla_due_at:%Y-%m-%d %H:%M} UTC (+{late} min)"
        conn.execute(
            update(route_assignments)
            .where(route_assignments.c.id == row.id, route_assignments.c.status == "assigned")
            .values(status="rerouted", rerouted_at=now, reason=(row.reason + note)[:500])
        )
        missed[row.prospect_id].add(row.assignee_email)
        lead = leads.get(row.prospect_id)
        if lead is None:  # pragma: no cover - the foreign key keeps prospects
            continue
        d = router.route(lead, state, now, exclude=missed[row.prospect_id])
        d = Decision(
            d.assignee,
            d.rule,
            f"reroute after {row.assignee_email} missed the SLA; {d.reason}"[:500],
            d.pool,
            d.fallback,
            d.sla_due_at,
        )
        _record(conn, row.prospect_id, d, now)
        out.append(Reroute(row.id, row.prospect_id, row.assignee_email, d))
    _save_ledger(conn, state, now)
    return out
