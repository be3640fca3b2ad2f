"""The CRM outbox and the change pull, against the in-memory CRM (vendors: tests/adapters/crm)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.support.harness import Harness, cadence_yaml, make_cadence, prospect
from touchflow.adapters.fake_crm import FakeCrm
from touchflow.errors import FatalError, RateLimited
from touchflow.services.crm_sync import (
    drain_outbox,
    outbox_status,
    pull_changes,
    queue_lead,
    queue_new_activities,
)
from touchflow.store.schema import crm_links, crm_outbox, events

MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
PEOPLE = ["ann@acme.example", "bob@acme.example", "cy@globex.example"]


class Flaky(FakeCrm):
    """Answers 429 ``fail`` times, then works; or fails for good with a FatalError."""

    def __init__(self, fail: int = 0, fatal: bool = False) -> None:
        super().__init__(page_size=2)
        self.fail, self.fatal = fail, fatal

    def upsert_people(self, people):  # type: ignore[no-untyped-def]
        if self.fatal:
            raise FatalError(
                "bad property", connector="fake", operation="upsert_people", status=400
            )
        if self.fail:
            self.fail -= 1
            raise RateLimited("slow down", retry_after=90, connector="fake",
                              operation="upsert_people", status=429)  # fmt: skip
        return super().upsert_people(people)


EXITS = "reply, bounce, unsubscribe, meeting_booked, deal_created"


def _world(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path, cadence_yaml(exit_on=EXITS)))
    h.add([prospect(e) for e in PEOPLE], MON - timedelta(days=1))
    h.tick(MON)  # three intros sent
    return h


def _queue_all(db, crm: str, now=MON):
    with db.begin() as conn:
        for email in PEOPLE:
            queue_lead(conn, crm, email, now)


def test_outbox_pushes_a_batch_once_and_links_the_ids(db, tmp_path):
    _world(db, tmp_path)
    crm = FakeCrm()
    _queue_all(db, crm.name)
    _queue_all(db, crm.name)  # queued twice: still one row each
    report = drain_outbox(db, crm, MON)
    assert (report.pushed, report.retrying, report.failed) == (3, 0, 0)
    assert crm.count("person") == 3
    assert drain_outbox(db, crm, MON).pushed == 0
    with db.connect() as conn:
        links = conn.execute(select(crm_links.c.local_key).where(crm_links.c.kind == "person"))
        assert sorted(links.scalars()) == sorted(PEOPLE)
        assert outbox_status(conn, crm.name) == {"done": 3}
    # A lead pushed again (say its score changed) updates, never duplicates.
    with db.begin() as conn:
        queue_lead(conn, crm.name, PEOPLE[0], MON)
    assert drain_outbox(db, crm, MON).pushed == 1 and crm.count("person") == 3


def test_rate_limits_are_waited_out_and_nothing_is_lost(db, tmp_path):
    _world(db, tmp_path)
    crm = Flaky(fail=2)
    _queue_all(db, crm.name)
    first = drain_outbox(db, crm, MON)
    assert (first.pushed, first.retrying) == (0, 3)
    with db.connect() as conn:
        rows = conn.execute(select(crm_outbox)).all()
    assert {r.next_attempt_at for r in rows} == {MON + timedelta(seconds=90)}  # Retry-After
    assert drain_outbox(db, crm, MON + timedelta(seconds=30)).pushed == 0  # not due yet
    assert drain_outbox(db, crm, MON + timedelta(seconds=90)).retrying == 3  # 429 again
    assert drain_outbox(db, crm, MON + timedelta(minutes=5)).pushed == 3
    assert crm.count("person") == 3


def test_a_fatal_error_fails_visibly_without_retrying(db, tmp_path):
    _world(db, tmp_path)
    crm = Flaky(fatal=True)
    _queue_all(db, crm.name)
    assert drain_outbox(db, crm, MON).failed == 3
    with db.connect() as conn:
        assert outbox_status(conn, crm.name) == {"failed": 3}
        assert {r.last_error for r in conn.execute(select(crm_outbox))} == {
            "fake.upsert_people status 400: bad property"
        }


def test_touches_are_logged_as_activities_once(db, tmp_path):
    h = _world(db, tmp_path)
    crm = FakeCrm()
    with db.begin() as conn:
        assert queue_new_activities(conn, crm.name, MON) == 3  # the three intros
        assert queue_new_activities(conn, crm.name, MON) == 0
    assert drain_outbox(db, crm, MON).pushed == 3
    assert crm.count("activity") == 3 and crm.count("person") == 3
    # The call tasks are logged once done, with their outcome.
    due = h.enrollment(PEOPLE[0]).next_due_at
    h.tick(due)
    with db.begin() as conn:
        assert queue_new_activities(conn, crm.name, due) == 0  # tasks still open
    h.complete_due_tasks(due, outcome="connected")
    with db.begin() as conn:
        assert queue_new_activities(conn, crm.name, due) == 3
    drain_outbox(db, crm, due)
    outcomes = sorted(a.get("outcome") or "" for a in crm.activities.values())
    assert outcomes == ["", "", "", "connected", "connected", "connected"]


def test_changes_end_or_pause_cadences_once(db, tmp_path):
    h = _world(db, tmp_path)
    crm = FakeCrm(page_size=2)
    ae = crm.seed_owner("ae@yourco.example", "An AE")
    crm.add_change("meeting_booked", PEOPLE[0], at=MON + timedelta(hours=1))
    crm.add_change("deal_created", PEOPLE[1], at=MON + timedelta(hours=2))
    crm.add_change("owner_changed", PEOPLE[2], at=MON + timedelta(hours=3), owner_id=ae)
    crm.add_change("meeting_booked", "stranger@nowhere.example", at=MON + timedelta(hours=4))
    now = MON + timedelta(hours=5)
    report = pull_changes(db, crm, h.runtimes, now, first_since=MON)
    assert (report.changes, report.new, report.ended, report.paused, report.unmatched) == (
        4, 4, 2, 1, 1,
    )  # fmt: skip
    assert (h.enrollment(PEOPLE[0]).state, h.enrollment(PEOPLE[0]).reason) == (
        "finished",
        "meeting",
    )
    assert h.enrollment(PEOPLE[1]).reason == "deal_created"
    cy = h.enrollment(PEOPLE[2])
    assert (cy.state, cy.reason, cy.owner_email) == ("paused", "crm_owner_changed",
                                                     "ae@yourco.example")  # fmt: skip
    assert cy.next_due_at == now + timedelta(days=3)
    # A second pull sees nothing new; a change that arrives later is picked up.
    assert pull_changes(db, crm, h.runtimes, now).new == 0
    crm.add_change("meeting_booked", PEOPLE[2], at=now + timedelta(minutes=1))
    later = pull_changes(db, crm, h.runtimes, now + timedelta(minutes=5))
    assert (later.new, later.ended) == (1, 1)
    with db.connect() as conn:
        kinds = conn.execute(select(events.c.type).where(events.c.source == "crm:fake"))
        assert sorted(kinds.scalars()) == sorted(
            ["meeting_booked", "deal_created", "owner_changed", "meeting_booked", "meeting_booked"]
        )


def test_leads_routed_before_the_crm_existed_are_backfilled_once_with_names_and_owners(
    db, tmp_path
):
    from tests.conftest import ROOT
    from touchflow.domain.routing import load_router
    from touchflow.services.crm_sync import queue_backfill, unqueued_lead_count
    from touchflow.services.routing import route_qualified

    _world(db, tmp_path)
    with db.begin() as conn:  # routed while TOUCHFLOW_CRM__PROVIDER was none
        routed = route_qualified(conn, load_router(ROOT / "config"), MON, crm=None,
                                 min_lifecycle="lead")  # fmt: skip
    assert sorted(d.lead for d in routed) == sorted(PEOPLE)
    with db.connect() as conn:
        assert conn.execute(select(crm_outbox)).all() == []  # nothing queued: no CRM then
    crm = FakeCrm()
    owners = {d.assignee: crm.seed_owner(d.assignee, "An AE") for d in routed}
    with db.connect() as conn:
        assert unqueued_lead_count(conn, crm.name) == 3
    # One already linked (pushed by hand, say) is not queued again.
    with db.begin() as conn:
        conn.execute(crm_links.insert().values(crm="fake", kind="person", local_key=PEOPLE[2],
                                               external_id="p-by-hand", synced_at=MON))  # fmt: skip
        assert queue_backfill(conn, crm.name, MON) == 2
        assert queue_backfill(conn, crm.name, MON) == 0
        assert unqueued_lead_count(conn, crm.name) == 0
    report = drain_outbox(db, crm, MON)
    assert report.outcomes["push_lead", "pushed"] == 2 and crm.count("person") == 2
    by_email = {p["email"]: p for p in crm.people.values()}
    for d in routed[:2]:
        person = by_email[d.lead]
        assert (person["first_name"], person["title"]) == ("Ann", "VP Sales")
        assert person["owner_id"] == owners[d.assignee]
    with db.begin() as conn:
        assert queue_backfill(conn, crm.name, MON) == 0  # pushed: done rows count as had


def test_a_drain_reports_outcomes_per_operation_and_why_rows_failed(db, tmp_path):
    _world(db, tmp_path)
    crm = Flaky(fatal=True)
    _queue_all(db, crm.name)
    report = drain_outbox(db, crm, MON)
    assert report.outcomes == {("push_lead", "failed"): 3}
    [(key, n)] = report.reasons.items()
    assert key[0] == "push_lead" and "bad property" in key[1] and n == 3


def test_a_pushed_lead_gets_its_aes_crm_owner_id_from_team_yaml(db, tmp_path):
    from sqlalchemy import update

    from touchflow.store.schema import prospects

    _world(db, tmp_path)
    with db.begin() as conn:
        for email, ae in ((PEOPLE[0], "ana.souza@yourco.com"), (PEOPLE[1], "ben@yourco.com")):
            conn.execute(update(prospects).where(prospects.c.email == email).values(ae_email=ae))
            queue_lead(conn, "fake", email, MON)
    crm = FakeCrm()
    # Her CRM login is not her work email: only team.yaml's crm_owner_id finds her.
    ana = crm.seed_owner("asouza@crm-login.example", "Ana Souza")
    ben = crm.seed_owner("ben@yourco.com", "Ben")
    # Ben's id in team.yaml is a typo: not sent (the CRM would refuse the push); his email is.
    ids = {"ana.souza@yourco.com": ana, "ben@yourco.com": "0055e000001Typo"}
    assert drain_outbox(db, crm, MON, owner_ids=ids).pushed == 2
    owners = {p["email"]: p["owner_id"] for p in crm.people.values()}
    assert owners == {PEOPLE[0]: ana, PEOPLE[1]: ben}


def test_a_rerouted_lead_is_named_and_pushed_again_with_its_new_owner(db):
    from tests.domain.test_routing import router
    from tests.store.test_routing_store import TUE, add_prospects
    from touchflow.services.routing import reroute_and_route

    r = router()
    with db.begin() as conn:
        add_prospects(conn, [("late@slow.example", "FR", 10, None)])
    first = reroute_and_route(db, r, TUE, crm="fake", min_lifecycle="lead")
    [d] = first.routed
    assert d.lead == "late@slow.example"
    crm = FakeCrm()
    assert drain_outbox(db, crm, TUE).pushed == 1  # pushed, owner: the first AE
    later = TUE + timedelta(minutes=16)  # the SLA (15 minutes) missed
    second = reroute_and_route(db, r, later, crm="fake", route_new=False)
    [rr] = second.rerouted
    assert rr.decision.lead == "late@slow.example" and rr.missed_by == d.assignee
    assert rr.decision.reason.startswith(f"reroute after {d.assignee} missed the SLA")
    with db.connect() as conn:
        row = conn.execute(select(crm_outbox).where(crm_outbox.c.key == "late@slow.example")).one()
    assert row.status == "pending"  # queued again: the CRM record follows the new owner
