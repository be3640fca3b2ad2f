"""Buying-committee coverage per open deal, stored and kept up to date (the pipeline report's).

:func:`~touchflow.services.committee.committee_report` gathers every open
deal's people (contacts, and the account's touched prospects with their
titles): seconds at 50,000 deals and a million prospects, too slow per
dashboard view. :func:`coverage_by_deal` keeps its result (score and
single-threaded flag) per deal in ``committee_coverage`` and recomputes only
the deals something changed for since its marks (``read_model_state``):

* a prospect touched for the first time (touch ids above the mark, and touches
  that were sending or unknown then and have settled): the open deals at that
  prospect's account domain, and the deals naming the prospect as a contact;
* a prospect updated (its title: ``prospects.updated_at``): the same deals;
* a deal written (``deals.updated_at``, a new id, a stage change): that deal
  (closed: it leaves the table);
* a deal contact written (``deal_contacts.updated_at``, which moves only when
  the contact changed, or a new id): that deal;
* the committee configuration changed, or a deal deleted: everything.

Timestamps are compared after the mark: a sync or an import writes a batch
with one ``now``, and "at or after" would recompute the whole last batch on
every change (all 50,000 deals of a bulk load). Recomputing uses
committee_report itself, so the stored figures are the ones it gives
(``ReportContext(source="ledger")`` computes them per call; the tests and
bench/dashboard.py compare the two).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, tuple_

from touchflow.domain.batching import chunks
from touchflow.domain.pipeline import Pipeline
from touchflow.services.committee import committee_report
from touchflow.store.deals import open_deals_at
from touchflow.store.filters import owner_is
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import (
    committee_coverage,
    deal_contacts,
    deal_stage_changes,
    deals,
    enrollments,
    prospects,
    read_model_state,
    touches,
)

__all__ = ["coverage_by_deal", "coverage_totals", "marks"]

NAME = "committee_coverage"
UNSETTLED = ("sending", "unknown")
T = TypeVar("T")
Key = tuple[str, str]
#: (source, deal_id) -> (owner email, coverage score, single-threaded)
Coverage = dict[Key, tuple[str | None, float, bool]]


def coverage_by_deal(conn: Connection, pipeline: Pipeline) -> Coverage:
    """Every open deal's committee coverage score and single-threaded flag, from the read
    model, brought up to date first (in its own transaction) when anything changed."""
    return _fresh(conn, pipeline, _read)


def coverage_totals(
    conn: Connection, pipeline: Pipeline, owners: str | frozenset[str] | None
) -> tuple[int, float | None]:
    """Over the open deals of ``owners`` (an email, a set, None: everyone's), from the read
    model brought up to date first: how many are single-threaded, their average score."""
    if owners is not None and not isinstance(owners, str) and not owners:
        return 0, None
    c = committee_coverage.c

    def read(conn: Connection) -> tuple[int, float | None]:
        query = select(
            func.count().filter(c.single_threaded.is_(True)), func.avg(c.score)
        ).select_from(committee_coverage)
        if owners is not None:
            query = query.where(owner_is(c.owner_email, owners))
        row: Any = conn.execute(query).one()
        return int(row[0] or 0), None if row[1] is None else float(row[1])

    return _fresh(conn, pipeline, read)


def _fresh(conn: Connection, pipeline: Pipeline, read: Callable[[Connection], T]) -> T:
    """``read`` of the read model, brought up to date first (in its own transaction, read
    there too) when anything changed since its marks."""
    now_marks = marks(conn, pipeline)
    state = conn.execute(
        select(read_model_state.c.state).where(read_model_state.c.name == NAME)
    ).scalar_one_or_none()
    if state == now_marks:
        return read(conn)
    with conn.engine.begin() as w:
        _update(w, pipeline, state, now_marks)
        return read(w)


def _read(conn: Connection) -> Coverage:
    c = committee_coverage.c
    return {
        (r.source, r.deal_id): (r.owner_email, float(r.score), bool(r.single_threaded))
        for r in conn.execute(
            select(c.source, c.deal_id, c.owner_email, c.score, c.single_threaded)
        )
    }


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    return v.isoformat() if isinstance(v, datetime) else str(v)


def marks(conn: Connection, pipeline: Pipeline) -> dict[str, Any]:
    """What the read model depends on, as it stands (cheap: indexed maxima and counts):
    the deals, their stage changes and contacts, touches, prospects, the configuration."""
    top_touch: int = conn.execute(select(func.max(touches.c.id))).scalar_one() or 0
    unsettled: list[int] = sorted(
        conn.execute(
            select(touches.c.id).where(touches.c.status.in_(UNSETTLED), touches.c.id <= top_touch)
        ).scalars()
    )
    d = conn.execute(select(func.count(), func.max(deals.c.updated_at), func.max(deals.c.id))).one()
    k = conn.execute(
        select(func.count(), func.max(deal_contacts.c.updated_at), func.max(deal_contacts.c.id))
    ).one()
    config = pipeline.committee.model_dump_json() + repr(sorted(pipeline.stage_names))
    return {
        "config": hashlib.sha256(config.encode()).hexdigest(),
        "touches": int(top_touch),
        "unsettled": unsettled,
        "prospects": _iso(conn.execute(select(func.max(prospects.c.updated_at))).scalar_one()),
        "deals": [int(d[0]), _iso(d[1]), int(d[2] or 0)],
        "changes": int(conn.execute(select(func.max(deal_stage_changes.c.id))).scalar_one() or 0),
        "contacts": [int(k[0]), _iso(k[1]), int(k[2] or 0)],
    }


def _update(
    conn: Connection, pipeline: Pipeline, state: dict[str, Any] | None, marks: dict[str, Any]
) -> None:
    full = state is None or state.get("config") != marks["config"]
    full = full or marks["deals"][0] < state["deals"][0]  # type: ignore[index]  # a deletion
    if full:
        conn.execute(delete(committee_coverage))
        _store(conn, committee_report(conn, pipeline))
    else:
        assert state is not None
        domains, emails, keys = _changed(conn, state, marks)
        if emails:
            k = deal_contacts.c
            for part in chunks(sorted(emails), 1000):
                keys.update(
                    (r.source, r.deal_id)
                    for r in conn.execute(select(k.source, k.deal_id).where(k.email.in_(part)))
                )
        c = committee_coverage.c
        for part in chunks(sorted(domains), 1000):
            conn.execute(delete(committee_coverage).where(c.account_domain.in_(part)))
        for key_part in chunks(sorted(keys), 500):
            conn.execute(
                delete(committee_coverage).where(tuple_(c.source, c.deal_id).in_(key_part))
            )
        found = open_deals_at(conn, domains=sorted(domains), keys=sorted(keys))
        if found:
            _store(conn, committee_report(conn, pipeline, only=found))
    stmt = dialect_insert(conn, read_model_state).values(name=NAME, state=marks)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"state": stmt.excluded.state})
    )


def _changed(
    conn: Connection, state: dict[str, Any], marks: dict[str, Any]
) -> tuple[set[str], set[str], set[Key]]:
    """The account domains, prospect emails and deal keys changed since ``state``."""
    domains: set[str] = set()
    emails: set[str] = set()
    keys: set[Key] = set()
    t, e, p = touches.c, enrollments.c, prospects.c
    settled = sorted(set(state["unsettled"]) - set(marks["unsettled"]))
    conds = [and_(t.id > state["touches"], t.id <= marks["touches"])]
    if settled:
        conds += [t.id.in_(part) for part in chunks(settled, 1000)]
    touched = (
        select(p.domain, p.email)
        .select_from(touches)
        .join(enrollments, e.id == t.enrollment_id)
        .join(prospects, p.id == e.prospect_id)
        .where(t.status == "sent", or_(*conds))
        .distinct()
    )
    rows: list[Any] = list(conn.execute(touched))
    if state["prospects"] is not None:
        rows += conn.execute(
            select(p.domain, p.email).where(
                p.updated_at > datetime.fromisoformat(state["prospects"])
            )
        ).all()
    elif marks["prospects"] is not None:
        rows += conn.execute(select(p.domain, p.email)).all()
    for domain, email in rows:
        if domain:
            domains.add(domain)
        emails.add(email)
    d = deals.c
    _, d_at, d_id = state["deals"]
    cond = d.id > d_id
    if d_at is not None:
        cond = or_(cond, d.updated_at > datetime.fromisoformat(d_at))
    keys.update(_keys(conn.execute(select(d.source, d.deal_id).where(cond))))
    s = deal_stage_changes.c
    keys.update(_keys(conn.execute(select(s.source, s.deal_id).where(s.id > state["changes"]))))
    k = deal_contacts.c
    _, k_at, k_id = state["contacts"]
    cond = k.id > k_id
    if k_at is not None:
        cond = or_(cond, k.updated_at > datetime.fromisoformat(k_at))
    keys.update(_keys(conn.execute(select(k.source, k.deal_id).where(cond))))
    return domains, emails, keys


def _keys(rows: Iterable[Any]) -> set[Key]:
    return {(str(r[0]), str(r[1])) for r in rows}


def _store(conn: Connection, found: Iterable[Any]) -> None:
    rows = [
        {
            "source": c.deal.source,
            "deal_id": c.deal.deal_id,
            "account_domain": c.deal.account_domain,
            "owner_email": c.deal.owner_email,
            "score": c.coverage.score,
            "single_threaded": c.coverage.single_threaded,
        }
        for c in found
    ]
    for part in chunks(rows, 5000):
        conn.execute(insert(committee_coverage), list(part))
