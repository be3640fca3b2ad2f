"""Routing against a real database (SQLite and PostgreSQL): route, accept, reroute, ledger."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select

from tests.domain.test_routing import ROUTING, router
from touchflow.errors import TransitionError
from touchflow.store.routing_store import (
    accept,
    load_state,
    reroute_overdue,
    routable_ids,
    route_prospects,
)
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


# Members in five zones (Auckland, Kolkata and Berlin are ahead of UTC, Los Angeles and the
# team default New York behind), so their local days start at five different instants.
TZ_TEAM = """\
working_hours: {timezone: America/New_York, start: "09:00", end: "17:00"}
members:
  - {email: a@co.com, name: A, territories: [na], segments: [enterprise], weight: 2,
     working_hours: {timezone: Pacific/Auckland, start: "09:00", end: "17:00"}}
  - {email: b@co.com, name: B, territories: [na], segments: [enterprise, mid],
     working_hours: {timezone: America/Los_Angeles, start: "09:00", end: "17:00"}}
  - {email: c@co.com, name: C, territories: [emea], daily_capacity: 2,
     working_hours: {timezone: Asia/Kolkata, start: "09:00", end: "17:00"}}
  - {email: d@co.com, name: D, territories: [emea, JP]}
  - {email: s@co.com, name: S, role: sdr, territories: [na],
     working_hours: {timezone: Europe/Berlin, start: "09:00", end: "17:00"}}
"""


def test_todays_counts_per_member_time_zone_over_two_days(db):
    """load_state counts each member's assignments since their own local midnight.

    Reference: Router.today_counts over every assignment, for the team members (routing reads
    ``today`` only for members; the fallback person off the team is never capacity-checked).
    """
    r = router(TZ_TEAM, ROUTING)
    members = [m.email for m in r.team.members]
    emails = [*members, "boss@co.com", "gone@co.com"]
    rng = random.Random(7)
    begin = TUE - timedelta(days=1)
    times = [begin + timedelta(minutes=rng.randrange(2 * 24 * 60)) for _ in range(600)]
    rows = [(rng.choice(emails), at) for at in times]
    # The edges at one instant: exactly at each local midnight and at now count, a microsecond
    # before midnight or after now does not.
    edge = TUE + timedelta(hours=7, minutes=30)
    for email in members:
        start = r.day_start(email, edge)
        rows += [(email, start), (email, start - timedelta(microseconds=1))]
        rows += [(email, edge), (email, edge + timedelta(microseconds=1))]
    with db.begin() as conn:
        (pid,) = add_prospects(conn, ent_na(1))
        conn.execute(
            insert(route_assignments),
            [
                {
                    "prospect_id": pid,
                    "assignee_email": email,
                    "rule": "x",
                    "reason": "x",
                    "status": ("assigned", "accepted", "rerouted")[i % 3],
                    "assigned_at": at,
                }
                for i, (email, at) in enumerate(rows)
            ],
        )
    nows = [edge, *(begin + timedelta(hours=h, minutes=17) for h in range(0, 49, 5))]
    for now in nows:
        want = Counter({e: n for e, n in r.today_counts(rows, now).items() if e in members})
        with db.begin() as conn:
            got = load_state(conn, r, now).today
        with db.connect() as conn:
            assert load_state(conn, r, now, lock=False).today == got
        assert got == want, now
    # The zones matter: at 22:30 UTC Auckland's day is 11.5 h old, Los Angeles' 14.5 h.
    assert len({r.day_start(e, edge) for e in members}) == 5
    with db.connect() as conn:
        today = load_state(conn, r, edge, lock=False).today
    assert all(today[e] >= 2 for e in members)  # midnight and now at least
    assert today == r.today_counts([(e, at) for e, at in rows if e in members], edge)


def test_a_new_pool_gets_its_ledger_rows_on_first_use(db):
    with db.begin() as conn:
        ids = add_prospects(conn, [*ent_na(2), ("j@j.example", "JP", 10, None)])
        route_prospects(conn, router(), ids[:1], TUE)
    routing = ROUTING.replace(
        "  - name: hot-emea",
        "  - {name: jp, kind: territory, match: {countries: [JP]}, pool: [d@co.com]}\n"
        "  - name: hot-emea",
    )
    with db.begin() as conn:
        got = route_prospects(conn, router(routing=routing), ids[1:], TUE)
    assert [(d.assignee, d.rule) for d in got] == [("a@co.com", "ent-na"), ("d@co.com", "jp")]
    with db.connect() as conn:
        ledger = {
            (row.pool, row.member_email): (row.assigned, row.credit)
            for row in conn.execute(select(routing_ledger))
        }
    assert ledger[("jp", "d@co.com")] == (1, 0.0)
    assert ledger[("ent-na", "a@co.com")] == (2, 0.0)  # weight 2: a, a, then b
    assert ledger[("ent-na", "b@co.com")] == (0, 0.0)
    assert {pool for pool, _ in ledger} == {"ent-na", "hot-emea", "emea", "everyone", "jp"}


#: Statements route_prospects issues for one lead once the ledger exists: the ledger SELECT
#: ... FOR UPDATE, today's counts, the lead, the assignment INSERT, the prospects UPDATE and
#: the ledger upsert; SQLite first takes its write lock with a no-op UPDATE. (Before: 8 and 9.)
STEADY_STATE_STATEMENTS = {"postgresql": 6, "sqlite": 7}


def test_one_lead_in_the_steady_state_takes_few_statements(db):
    with db.begin() as conn:
        ids = add_prospects(conn, ent_na(4))
        route_prospects(conn, router(), ids[:1], TUE)  # the pools' first use
        # A busy day: more assignments add no statements (nor rows read).
        conn.execute(
            insert(route_assignments),
            [
                {
                    "prospect_id": ids[0],
                    "assignee_email": "a@co.com",
                    "rule": "x",
                    "reason": "x",
                    "status": "rerouted",
                    "assigned_at": TUE - timedelta(seconds=i),
                }
                for i in range(300)
            ],
        )
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db, "before_cursor_execute", count)
    try:
        for k, pid in enumerate(ids[1:3]):
            statements.clear()
            with db.begin() as conn:
                (d,) = route_prospects(conn, router(), [pid], TUE + timedelta(minutes=k))
            assert d.rule == "ent-na"
            limit = STEADY_STATE_STATEMENTS[db.dialect.name]
            assert len(statements) <= limit, "\n".join(statements)
        statements.clear()
        with db.begin() as conn:  # already routed: still one lead query, nothing written
            assert route_prospects(conn, router(), ids[1:3], TUE) == []
        assert len(statements) <= limit - 3, "\n".join(statements)
    finally:
        event.remove(db, "before_cursor_execute", count)


def test_routable_ids_take_a_minimum_stage_and_skip_owned_opted_out_and_disqualified(db):
    stages = [None, "lead", "mql", "sql", "disqualified", "mql", "mql"]
    with db.begin() as conn:
        ids = add_prospects(conn, ent_na(len(stages)))
        for pid, stage in zip(ids, stages, strict=True):
            conn.execute(prospects.update().where(prospects.c.id == pid).values(lifecycle=stage))
        conn.execute(prospects.update().where(prospects.c.id == ids[5]).values(opted_out_at=TUE))
        conn.execute(prospects.update().where(prospects.c.id == ids[6]).values(ae_email="a@x.io"))
        assert routable_ids(conn) == routable_ids(conn, "mql") == [ids[2], ids[3]]
        assert routable_ids(conn, "sql") == [ids[3]]
        assert routable_ids(conn, "lead") == ids[:4]
        with pytest.raises(ValueError, match="min_lifecycle"):
            routable_ids(conn, "disqualified")
