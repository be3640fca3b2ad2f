"""Routing qualified leads to AEs, and queueing every routed lead for the CRM.

One rule for the ``intake`` flow, ``touchflow route`` and the demo: route the
routable set (no owner yet, not opted out, at ``min_lifecycle`` or later) and
queue each of them for the CRM under the connector's name, so the outbox key is
the same whichever way a lead was routed. ``POST /leads`` routes one lead its
own way (:mod:`touchflow.services.leads`), with a push right after its commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from touchflow.domain.routing import Decision, Router
from touchflow.services.crm_sync import queue_lead
from touchflow.store.routing_store import routable_ids, route_prospects
from touchflow.store.schema import prospects

__all__ = ["route_qualified"]


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
