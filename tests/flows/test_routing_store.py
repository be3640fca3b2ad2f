"""Routing against a real database (SQLite and PostgreSQL): route, accept, reroute, ledger."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from tests.unit.test_routing import router
from touchflow.errors import TransitionError
from touchflow.store.routing_store import accept, reroute_overdue, route_prospects
from touchflow.store.schema import accounts, prospects, route_assignments, routing_ledger

TUE = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def add_prospects(conn, rows, now=TUE):
    """rows: (email, country, employees, owner) -> prospect ids (one account per prospect)."""
    ids = []
    for email, country, employees, owner in rows:
        domain = email.split("@")[1]
        acc = conn.execute(
            insert(accounts)
            .values(
                domain=domain,
                employees=employees,
                owner_email=owner,
                created_at=now,
                updated_at=now,
            )
            .returning(accounts.c.id)
        ).scalar_one()
        pid = conn.execute(
            insert(prospects)
            .values(
                email=email,
                domain=domain,
                country=country,
                account_id=acc,
                fields={},
                created_at=now,
                updated_at=now,
            )
            .returning(prospects.c.id)
        ).scalar_one()
        ids.append(pid)
    return ids


def ent_na(n, start=0):
    return [(f"p{i}@c{i}.example", "US", 5000, None) for i in range(start, start + n)]


def test_route_writes_assignments_ledger_and_ae_email(db):
    r = router()
    with db.begin() as conn:
        ids = add_prospects(conn, [*ent_na(3), ("o@own.example", "DE", 10, "b@co.com")])
        decisions = route_prospects(conn, r, ids, TUE)
    assert [d.assignee for d in decisions] == ["a@co.com", "a@co.com", "b@co.com", "b@co.com"]
    assert decisions[3].rule == "owner"
    with db.connect() as conn:
        rows = list(conn.execute(select(route_assignments).order_by(route_assignments.c.id)))
        assert [(r.status, r.rule) for r in rows][:3] == [("assigned", "ent-na")] * 3
        assert rows[0].sla_due_at == TUE + timedelta(minutes=15)
        ae = dict(conn.execute(select(prospects.c.id, prospects.c.ae_email)).all())
        assert ae[ids[0]] == "a@co.com" and ae[ids[3]] == "b@co.com"
        ledger = {
            (row.pool, row.member_email): row.assigned
            for row in conn.execute(select(routing_ledger))
        }
    assert ledger[("ent-na", "a@co.com")] == 2 and ledger[("ent-na", "b@co.com")] == 1
    # Running again routes nobody twice.
    with db.begin() as conn:
        assert route_prospects(conn, r, ids, TUE) == []


def test_ledger_persists_across_router_instances(db):
    with db.begin() as conn:
        ids = add_prospects(conn, ent_na(12))
    got = []
    for chunk in (ids[:5], ids[5:7], ids[7:]):  # a fresh Router each run, as each flow run
        with db.begin() as conn:
            got += [d.assignee for d in route_prospects(conn, router(), chunk, TUE)]
    assert Counter(got) == {"a@co.com": 8, "b@co.com": 4}


def test_daily_capacity_counts_todays_assignments_in_the_database(db):
    with db.begin() as conn:
        ids = add_prospects(conn, [(f"e{i}@e{i}.example", "DE", 10, None) for i in range(5)])
    with db.begin() as conn:
        route_prospects(conn, router(), ids[:2], TUE)
    with db.begin() as conn:
        later = route_prospects(conn, router(), ids[2:], TUE + timedelta(hours=1))
    with db.connect() as conn:
        per = Counter(conn.execute(select(route_assignments.c.assignee_email)).scalars())
    assert per == {"c@co.com": 2, "d@co.com": 3}  # C's daily capacity is 2
    assert [d.assignee for d in later] == ["c@co.com", "d@co.com", "d@co.com"]
    # The next day C is under capacity again.
    with db.begin() as conn:
        ids2 = add_prospects(conn, [("n@n.example", "DE", 10, None)], TUE + timedelta(days=1))
        (d,) = route_prospects(conn, router(), ids2, TUE + timedelta(days=1))
    assert d.assignee == "c@co.com"


def test_accept_and_reroute_overdue(db):
    r = router()
    with db.begin() as conn:
        ids = add_prospects(conn, [(f"e{i}@e{i}.example", "FR", 10, None) for i in range(2)])
        first = route_prospects(conn, r, ids, TUE)
    assert [d.assignee for d in first] == ["c@co.com", "d@co.com"]
    with db.begin() as conn:
        ok = accept(conn, prospect_id=ids[0], now=TUE + timedelta(minutes=5))
    assert ok.status == "accepted" and ok.within_sla
    with db.begin() as conn:  # twice is fine
        assert accept(conn, assignment_id=ok.id, now=TUE + timedelta(minutes=6)).accepted_at == (
            TUE + timedelta(minutes=5)
        )
    with db.begin() as conn:  # not yet overdue
        assert reroute_overdue(conn, r, TUE + timedelta(minutes=14)) == []
    with db.begin() as conn:
        (rr,) = reroute_overdue(conn, r, TUE + timedelta(minutes=16))
    assert rr.prospect_id == ids[1] and rr.missed_by == "d@co.com"
    assert rr.decision.assignee == "c@co.com"  # D excluded
    with db.connect() as conn:
        rows = list(
            conn.execute(
                select(route_assignments)
                .where(route_assignments.c.prospect_id == ids[1])
                .order_by(route_assignments.c.id)
            )
        )
        assert [r.status for r in rows] == ["rerouted", "assigned"]
        assert rows[0].rerouted_at == TUE + timedelta(minutes=16)
        assert "SLA missed" in rows[0].reason
        assert rows[0].rerouted_at > rows[0].sla_due_at
        ae = conn.execute(select(prospects.c.ae_email).where(prospects.c.id == ids[1])).scalar()
        assert ae == "c@co.com"
    with db.begin() as conn, pytest.raises(TransitionError, match="rerouted"):
        accept(conn, assignment_id=rows[0].id, now=TUE + timedelta(minutes=17))
    # C misses too: C is at capacity and D missed it, so the fallback takes it.
    with db.begin() as conn:
        (rr2,) = reroute_overdue(conn, r, TUE + timedelta(minutes=40))
    assert rr2.decision.fallback and rr2.decision.assignee == "boss@co.com"
    with db.begin() as conn:
        assert reroute_overdue(conn, r, TUE + timedelta(days=3)) == []  # fallback has no SLA


def test_two_concurrent_routers_share_the_ledger(db):
    """Two threads routing at once: no lost ledger update, 2:1 shares.

    PostgreSQL serializes them on the ledger rows (FOR UPDATE), SQLite on its write lock.
    """
    with db.begin() as conn:
        ids = add_prospects(conn, ent_na(40))
    errors: list[BaseException] = []

    def work(chunk):
        try:
            for i in range(0, len(chunk), 2):
                with db.begin() as conn:
                    route_prospects(conn, router(), chunk[i : i + 2], TUE)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ids[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with db.connect() as conn:
        per = Counter(conn.execute(select(route_assignments.c.assignee_email)).scalars())
        ledger = {
            r.member_email: r.assigned
            for r in conn.execute(select(routing_ledger).where(routing_ledger.c.pool == "ent-na"))
        }
    assert sum(per.values()) == 40
    assert ledger == {"a@co.com": per["a@co.com"], "b@co.com": per["b@co.com"]}
    assert abs(per["a@co.com"] - 40 * 2 / 3) <= 2
