"""Routing qualified leads to AEs, and queueing every routed lead for the CRM.

One rule for the ``intake`` flow, ``touchflow route`` and the demo: route the
routable set (no owner yet, not opted out, at ``min_lifecycle`` or later) and
queue each of them for the CRM under the connector's name, so the outbox key is
the same whichever way a lead was routed. ``POST /leads`` routes one lead its
own way (:mod:`touchflow.services.leads`), with a push right after its commit.
``touchflow route`` first takes back the leads past their SLA and routes them
again, then routes the new ones, in one transaction (:func:`reroute_and_route`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from touchflow.domain.routing import Decision, Router
from touchflow.services.crm_sync import queue_lead
from touchflow.store.routing_store import (
    ROUTABLE,
    Reroute,
    reroute_overdue,
    routable_ids,
    route_prospects,
)
from touchflow.store.schema import prospects

__all__ = ["ROUTABLE", "Reroute", "RoutingRun", "reroute_and_route", "route_qualified"]


def route_qualified(
    conn: Connection,
    router: Router,
    now: datetime,
    *,
    crm: str | None,
    min_lifecycle: str = "mql",
) -> list[Decision]:
    """Route every routable prospect; queue each for ``crm`` (None: no CRM). Their decisions."""
    ids = routable_ids(conn, min_lifecycle)
    decisions = route_prospects(conn, router, ids, now)
    if crm is not None and ids:
        q = select(prospects.c.email).where(prospects.c.id.in_(ids))
        emails: list[str] = list(conn.execute(q).scalars())
        for email in emails:
            queue_lead(conn, crm, email, now)
    return decisions


@dataclass(frozen=True)
class RoutingRun:
    """What one routing run did: leads taken back after their SLA, and new leads routed."""

    rerouted: list[Reroute]
    routed: list[Decision]


def reroute_and_route(
    engine: Engine,
    router: Router,
    now: datetime,
    *,
    crm: str | None,
    min_lifecycle: str = "mql",
    route_new: bool = True,
) -> RoutingRun:
    """Reroute every lead past its SLA, then (``route_new``) route the routable ones.

    One transaction. ``min_lifecycle`` is one of :data:`ROUTABLE`; each rerouted and
    each newly routed lead is queued for ``crm`` (None: no CRM), as :func:`route_qualified`.
    """
    with engine.begin() as conn:
        rerouted = reroute_overdue(conn, router, now)
        if crm is not None and rerouted:
            # The lead has a new owner: the CRM record must follow (the push is an upsert).
            pids = sorted({r.prospect_id for r in rerouted})
            q = select(prospects.c.email).where(prospects.c.id.in_(pids))
            emails: list[str] = list(conn.execute(q).scalars())
            for email in emails:
                queue_lead(conn, crm, email, now)
        routed: list[Decision] = []
        if route_new:
            routed = route_qualified(conn, router, now, crm=crm, min_lifecycle=min_lifecycle)
    return RoutingRun(rerouted, routed)
