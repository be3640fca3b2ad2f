"""Routing against the database: load the fairness ledger, decide, record, accept, reroute.

Every function runs inside the caller's transaction (``engine.begin()``), so routing a lead,
writing its assignment, updating the ledger and setting ``prospects.ae_email`` commit together
or not at all.

Two routers at once (two flow runs, two workers) must not both read the same ledger and hand
out leads from the same stale counts. Before reading anything, :func:`_ledger_rows` locks the
ledger rows of every pool of the routing config with ``SELECT ... FOR UPDATE`` (in pool and
member order, so lockers never deadlock), so routers serialize on PostgreSQL; only when a pool
has no rows yet does it insert them with ``INSERT ... ON CONFLICT DO NOTHING`` (in lock order;
a second inserter waits for the first to commit) and select and lock again. On SQLite, which
has no row locks, a no-op UPDATE takes the database write lock first, which serializes writers
the same way. Today's counts and open assignments are read after the lock, so they include
what the other router just committed.

Cost per call (``POST /leads`` routes one lead per request): in the steady state one lead
takes the ledger SELECT, one aggregate query for today's counts (index range scans per
member, not a read of the day's assignments), the lead query (which skips leads with an open
assignment), the assignment INSERT, the ``prospects`` UPDATE and one ledger upsert
(executemany); SQLite adds its lock UPDATE.

Statuses of ``route_assignments``: ``assigned`` -> ``accepted`` (:func:`accept`) or
``assigned`` -> ``rerouted`` (:func:`reroute_overdue`, after ``sla_due_at``; a new
``assigned`` row for the next assignee is written in the same transaction).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)

from touchflow.domain.routing import Decision, LeadInput, LedgerEntry, Router, RoutingState
from touchflow.errors import TouchflowError, TransitionError
from touchflow.store.prebuilt import Insert, per_dialect
from touchflow.store.schema import accounts, prospects, route_assignments, routing_ledger

__all__ = [
    "ROUTABLE",
    "Assignment",
    "Reroute",
    "accept",
    "load_state",
    "reroute_overdue",
    "routable_ids",
    "route_prospects",
]

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


# Statements that do not depend on the arguments, built once (values come as parameters).
_ra = route_assignments.c

#: SQLite only: a no-op UPDATE that takes the database write lock (see module docstring).
_SQLITE_WRITE_LOCK = (
    update(routing_ledger)
    .where(routing_ledger.c.pool == "", routing_ledger.c.member_email == "")
    .values(updated_at=bindparam("lock_at", type_=routing_ledger.c.updated_at.type))
)
_LEDGER = (
    select(routing_ledger)
    .where(routing_ledger.c.pool.in_(bindparam("pools", expanding=True)))
    .order_by(routing_ledger.c.pool, routing_ledger.c.member_email)
)
_LEDGER_FOR_UPDATE = _LEDGER.with_for_update()


@per_dialect
def _ledger_insert(insert: Insert) -> Any:
    return insert(routing_ledger).on_conflict_do_nothing(index_elements=["pool", "member_email"])


@per_dialect
def _ledger_upsert(insert: Insert) -> Any:
    stmt = insert(routing_ledger)
    return stmt.on_conflict_do_update(
        index_elements=["pool", "member_email"],
        set_={
            "assigned": stmt.excluded.assigned,
            "credit": stmt.excluded.credit,
            "updated_at": stmt.excluded.updated_at,
        },
    )


@cache
def _today_query(groups: int) -> Any:
    """Assignments per assignee since a start, for ``groups`` (emails, start) pairs.

    Parameters: ``now``, and ``emails{i}`` (a list) and ``start{i}`` for each group. Each
    branch is ``assignee_email IN (...) AND assigned_at BETWEEN start AND now``, which the
    index on ``(assignee_email, assigned_at)`` answers without reading other rows.
    """
    now = bindparam("now", type_=_ra.assigned_at.type)
    branches = [
        and_(
            _ra.assignee_email.in_(bindparam(f"emails{i}", expanding=True)),
            _ra.assigned_at >= bindparam(f"start{i}", type_=_ra.assigned_at.type),
            _ra.assigned_at <= now,
        )
        for i in range(groups)
    ]
    return (
        select(_ra.assignee_email, func.count()).where(or_(*branches)).group_by(_ra.assignee_email)
    )


def _today(conn: Connection, router: Router, now: datetime) -> Counter[str]:
    """Each team member's assignments (any rule and status) since their local midnight.

    Same counts as ``router.today_counts`` over every assignment, for the team members; other
    assignees (a fallback person off the team) are not counted: routing reads ``today`` only
    for members (capacity), and a fallback is never checked for eligibility.
    """
    by_start: dict[datetime, list[str]] = defaultdict(list)
    for m in router.team.members:
        by_start[router.day_start(m.email, now)].append(m.email)
    today: Counter[str] = Counter()
    if not by_start:
        return today
    params: dict[str, Any] = {"now": now}
    for i, (start, emails) in enumerate(sorted(by_start.items())):
        params[f"emails{i}"] = emails
        params[f"start{i}"] = start
    # Rows unpack as `object` to mypy: SQLAlchemy cannot type untyped Table columns.
    for email, n in cast(
        "Iterable[tuple[str, int]]", conn.execute(_today_query(len(by_start)), params)
    ):
        today[email] = n
    return today


def _ledger_rows(conn: Connection, router: Router, now: datetime, lock: bool) -> list[Any]:
    """The ledger rows of the config's pools, in pool and member order; locked if ``lock``.

    Locking: ``SELECT ... FOR UPDATE`` first (SQLite: after its no-op write-lock UPDATE).
    Only when a pool has no rows yet are its fresh rows inserted (ON CONFLICT DO NOTHING, in
    lock order) and the ledger selected and locked again.
    """
    pools = sorted(router.pools)
    if not lock:
        return list(conn.execute(_LEDGER, {"pools": pools}))
    if conn.dialect.name == "sqlite":
        # Takes SQLite's write lock now, before the reads below (see module docstring).
        conn.execute(_SQLITE_WRITE_LOCK, {"lock_at": now})
    rows = list(conn.execute(_LEDGER_FOR_UPDATE, {"pools": pools}))
    seen = {row.pool for row in rows}
    # A pool's first use: everyone starts at zero
    # (see "Fairness" in touchflow.domain.routing.router).
    fresh = [
        {"pool": p, "member_email": m.email, "assigned": 0, "credit": 0.0, "updated_at": now}
        for p in pools
        if p not in seen
        for m in sorted(router.pools[p], key=lambda m: m.email)
    ]
    if not fresh:
        return rows
    conn.execute(_ledger_insert(conn), fresh)  # in lock order
    return list(conn.execute(_LEDGER_FOR_UPDATE, {"pools": pools}))


def load_state(
    conn: Connection, router: Router, now: datetime, *, lock: bool = True
) -> RoutingState:
    """The ledger of the config's pools and today's assignment counts, locked for update."""
    state = RoutingState()
    for row in _ledger_rows(conn, router, now, lock):
        state.ledger[(row.pool, row.member_email)] = LedgerEntry(row.assigned, row.credit)
    state.today = _today(conn, router, now)
    return state


def _save_ledger(conn: Connection, state: RoutingState, now: datetime) -> None:
    if not state.changed:
        return
    rows = [
        {
            "pool": pool,
            "member_email": email,
            "assigned": state.ledger[(pool, email)].assigned,
            "credit": state.ledger[(pool, email)].credit,
            "updated_at": now,
        }
        for pool, email in sorted(state.changed)
    ]
    conn.execute(_ledger_upsert(conn), rows)
    state.changed.clear()


_LEADS = (
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
    .where(prospects.c.id.in_(bindparam("ids", expanding=True)))
)
#: The leads without an open assignment (the ones route_prospects routes).
_UNROUTED_LEADS = _LEADS.where(
    ~exists().where(_ra.prospect_id == prospects.c.id, _ra.status.in_(OPEN))
)


def _leads(conn: Connection, ids: Sequence[int], *, unrouted: bool = False) -> dict[int, LeadInput]:
    """The routing inputs of ``ids``; with ``unrouted``, only those without an open assignment."""
    q = _UNROUTED_LEADS if unrouted else _LEADS
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
        for r in conn.execute(q, {"ids": list(ids)})
    }


_INSERT_ASSIGNMENT = route_assignments.insert().returning(_ra.id)
_SET_AE_EMAIL = (
    update(prospects)
    .where(prospects.c.id == bindparam("pid"))
    .values(
        ae_email=bindparam("ae", type_=prospects.c.ae_email.type),
        updated_at=bindparam("at", type_=prospects.c.updated_at.type),
    )
)


def _record(conn: Connection, prospect_id: int, d: Decision, now: datetime) -> int:
    new_id: int = conn.execute(
        _INSERT_ASSIGNMENT,
        {
            "prospect_id": prospect_id,
            "assignee_email": d.assignee,
            "rule": d.rule,
            "reason": d.reason,
            "status": "assigned",
            "assigned_at": now,
            "sla_due_at": d.sla_due_at,
        },
    ).scalar_one()
    conn.execute(
        _SET_AE_EMAIL,
        {"pid": prospect_id, "ae": None if d.is_queue else d.assignee, "at": now},
    )
    return int(new_id)


#: Lifecycle stages in order; a minimum stage routes that stage and the later ones.
ROUTABLE = ("lead", "mql", "sql")


def routable_ids(conn: Connection, min_lifecycle: str = "mql") -> list[int]:
    """Prospects waiting for an AE: no owner yet, not opted out, at ``min_lifecycle`` or later.

    The ``intake`` flow, ``touchflow route`` and the demo all route this set, so an
    AE sees the same leads whichever way routing ran. ``"lead"`` also takes
    prospects not scored yet; disqualified ones are never routed.
    """
    if min_lifecycle not in ROUTABLE:
        raise ValueError(
            f"min_lifecycle must be one of {', '.join(ROUTABLE)}, not {min_lifecycle!r}"
        )
    stages = list(ROUTABLE[ROUTABLE.index(min_lifecycle) :])
    stage: ColumnElement[bool] = prospects.c.lifecycle.in_(stages)
    if min_lifecycle == "lead":
        stage = stage | prospects.c.lifecycle.is_(None)
    q = select(prospects.c.id).where(
        prospects.c.ae_email.is_(None), prospects.c.opted_out_at.is_(None), stage
    )
    return list(conn.execute(q.order_by(prospects.c.id)).scalars())


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
    # Read after the lock, so an assignment another router just committed is seen.
    leads = _leads(conn, ids, unrouted=True)
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
    keeps the lead in their ledger count (see "Fairness" in touchflow.domain.routing.router).
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
    for pid, email in cast(
        "Iterable[tuple[int, str]]",
        conn.execute(
            select(route_assignments.c.prospect_id, route_assignments.c.assignee_email).where(
                route_assignments.c.prospect_id.in_(pids), route_assignments.c.status == "rerouted"
            )
        ),
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
        why = f"reroute after {row.assignee_email} missed the SLA; {d.reason}"
        d = replace(d, reason=why[:500])
        _record(conn, row.prospect_id, d, now)
        out.append(Reroute(row.id, row.prospect_id, row.assignee_email, d))
    _save_ledger(conn, state, now)
    return out
