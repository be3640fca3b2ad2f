"""Buying-committee coverage per account and open deal (``touchflow deals committee``).

A deal's people are its contacts (from the CRM's contact roles) and the
account's prospects that outreach has touched (a sent touch in the ledger),
one entry per email. Each gets a role from the CRM, else from their title
(the prospect's title in touchflow); :func:`touchflow.domain.committee.coverage`
scores them. The last touch of each person is the latest sent touch of any of
their enrollments, so "days since the economic buyer was last touched" counts
email, SMS and call touches alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from touchflow.domain.batching import chunks
from touchflow.domain.committee import CommitteeMember, Coverage, committee_role, coverage
from touchflow.domain.deals import Deal
from touchflow.domain.pipeline import Pipeline
from touchflow.store.deals import deal_contacts_for, open_deals
from touchflow.store.schema import enrollments, prospects, touches

__all__ = ["DealCommittee", "committee_report"]


@dataclass(frozen=True)
class DealCommittee:
    """One open deal with its committee and coverage."""

    deal: Deal
    members: tuple[CommitteeMember, ...]
    coverage: Coverage

    def as_json(self, now: datetime) -> dict[str, Any]:
        c = self.coverage
        last = c.economic_buyer_last_touched_at
        return {
            "account": self.deal.account_domain,
            "deal_id": self.deal.deal_id,
            "source": self.deal.source,
            "name": self.deal.name,
            "stage": self.deal.stage,
            "amount": self.deal.amount,
            "currency": self.deal.currency,
            "coverage": c.score,
            "covered": [r.value for r in c.covered],
            "missing": [r.value for r in c.missing],
            "people": c.people,
            "single_threaded": c.single_threaded,
            "economic_buyer_last_touched_at": last.isoformat() if last else None,
            "days_since_economic_buyer_touch": c.days_since_economic_buyer_touch(now),
            "contacts": [
                {
                    "email": m.email,
                    "role": m.role.value,
                    "via": m.via,
                    "title": m.title,
                    "last_touched_at": m.last_touched_at.isoformat() if m.last_touched_at else None,
                }
                for m in self.members
            ],
        }


@dataclass(frozen=True)
class _Person:
    email: str
    title: str | None
    domain: str | None
    last: datetime | None


def _people(conn: Connection, emails: Sequence[str], domains: Sequence[str]) -> dict[str, Any]:
    """Prospects by email (those named, and those at the domains who were touched).

    The last-touch aggregate runs over these people's enrollments only (a GROUP BY
    over the whole ledger per chunk took seconds at 1M touches).
    """
    p, e, t = prospects, enrollments, touches
    found: dict[int, Any] = {}
    for part in chunks(list(emails)):
        for r in conn.execute(
            select(p.c.id, p.c.email, p.c.title, p.c.domain).where(p.c.email.in_(list(part)))
        ):
            found[r.id] = r
    named = set(found)
    for part in chunks(list(domains)):
        for r in conn.execute(
            select(p.c.id, p.c.email, p.c.title, p.c.domain).where(p.c.domain.in_(list(part)))
        ):
            found[r.id] = r
    # Their enrollments by prospect, then the enrollments' latest sent touch: two index
    # lookups. A join filtered by prospect was planned as a scan of every enrollment
    # (130 ms a page of 50 deals at 200,000 enrollments, growing with the table).
    whose: dict[int, int] = {}
    for ids in chunks(sorted(found)):
        mine: Any = conn.execute(
            select(e.c.id, e.c.prospect_id).where(e.c.prospect_id.in_(list(ids)))
        )
        whose.update((eid, pid) for eid, pid in mine)
    last: dict[int, datetime] = {}
    for eids in chunks(sorted(whose)):
        latest: Any = conn.execute(
            select(t.c.enrollment_id, func.max(t.c.executed_at))
            .where(t.c.status == "sent", t.c.enrollment_id.in_(list(eids)))
            .group_by(t.c.enrollment_id)
        )
        for eid, at in latest:
            pid = whose[eid]
            if at is not None and (pid not in last or at > last[pid]):
                last[pid] = at
    out: dict[str, Any] = {}
    for pid, r in found.items():
        if pid in named or pid in last:  # at a domain: only those who were touched
            out[r.email] = _Person(r.email, r.title, r.domain, last.get(pid))
    return out


def committee_report(
    conn: Connection,
    pipeline: Pipeline,
    *,
    account_domain: str | None = None,
    only: Sequence[Deal] | None = None,
) -> list[DealCommittee]:
    """Every open deal (of one account, if given; or the ``only`` deals) with its committee,
    by account then id."""
    found = list(only) if only is not None else open_deals(conn, account_domain=account_domain)
    keys = [(d.source, d.deal_id) for d in found]
    contacts = deal_contacts_for(conn, keys)
    emails = sorted({c.email for cs in contacts.values() for c in cs if c.email})
    domains = sorted({d.account_domain for d in found if d.account_domain})
    people = _people(conn, emails, domains)
    by_domain: dict[str, list[Any]] = defaultdict(list)
    for row in people.values():
        if row.domain and row.last is not None:
            by_domain[row.domain].append(row)
    out = []
    for deal in found:
        members: dict[str, CommitteeMember] = {}
        anonymous: list[CommitteeMember] = []
        for c in contacts.get((deal.source, deal.deal_id), []):
            person = people.get(c.email) if c.email else None
            title = person.title if person is not None else None
            role, via = committee_role(pipeline, None if c.inferred else c.role, title)
            if c.inferred and role.value == "other":
                role, via = c.role, "title"
            member = CommitteeMember(
                c.email, role, via, title, person.last if person is not None else None
            )
            if c.email:
                members[c.email] = member
            else:
                anonymous.append(member)
        for row in by_domain.get(deal.account_domain or "", []):
            if row.email not in members:
                role, via = committee_role(pipeline, None, row.title)
                members[row.email] = CommitteeMember(row.email, role, via, row.title, row.last)
        team = (*sorted(members.values(), key=lambda m: m.email or ""), *anonymous)
        out.append(DealCommittee(deal, team, coverage(team, pipeline.committee)))
    out.sort(key=lambda d: (d.deal.account_domain or "", d.deal.source, d.deal.deal_id))
    return out
