"""`touchflow report`: a known history built through the public commands, every figure checked.

The history: six prospects enrolled in enterprise-outbound (owner Sam), the
intro ticked out, SendGrid events posted to the signed webhook (delivered,
open, click, spam report), a reply (twice), a bounce and an unsubscribe with
`touchflow event`, call tasks worked with `touchflow task done` (one books a
meeting), and two inbound leads through `POST /leads` (scored, routed to an
AE, enrolled in inbound-fast-follow) whose welcome email the next tick sends.
Expected figures are counted here from that history; only which intro variant
each prospect got (the cadence's deterministic split) is read from the ledger.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.api.conftest import PUBLIC_KEY, sign
from touchflow.adapters.fake_crm import FakeCrm
from touchflow.bootstrap import lead_services
from touchflow.domain.statistics import prob_best, wilson_interval
from touchflow.entrypoints.api import create_app
from touchflow.entrypoints.cli import app
from touchflow.settings import Settings
from touchflow.store.db import make_engine
from touchflow.store.schema import (
    enrollments,
    prospects,
    rollup_counts,
    route_assignments,
    score_history,
    tasks,
    touches,
)

runner = CliRunner()
SAM = "sam@yourco.com"
API_KEY = "report-test-key"
PEOPLE = [f"p{i}@acme{i % 3}.example" for i in range(6)]
CSV = "email,first_name,last_name,title,company,domain,phone,country,timezone\n" + "".join(
    f"{e},P{i},L{i},VP Sales,Acme{i % 3},acme{i % 3}.example,+1415555010{i},US,"
    "America/Los_Angeles\n"
    for i, e in enumerate(PEOPLE)
)
LEADS = [
    {"email": "dana@northwind.example", "first_name": "Dana", "last_name": "W",
     "title": "VP of Sales", "company": "Northwind Analytics", "website": "https://northwind.example",
     "phone": "(415) 555-0134", "country": "US"},
    {"email": "eli@contoso.example", "first_name": "Eli", "last_name": "K",
     "title": "Director of Sales", "company": "Contoso", "website": "https://contoso.example",
     "phone": "(415) 555-0135", "country": "US"},
]  # fmt: skip


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


def report(name: str, *extra: str) -> list[dict[str, Any]]:
    return json.loads(cli("report", name, "--json", *extra))["rows"]


@pytest.fixture
def world(project: Path, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", migrated_db_url)
    engine = make_engine(migrated_db_url)
    clock = [datetime(2026, 11, 30, 16, 0, tzinfo=UTC)]
    settings = Settings(
        _env_file=None,
        database_url=migrated_db_url,
        api_key=API_KEY,
        cadences_dir=project / "cadences",
        templates_dir=project / "templates",
        config_dir=project / "config",
        crm={"provider": "fake"},
        sendgrid={"webhook_public_key": PUBLIC_KEY},
    )
    crm = FakeCrm()
    services = lead_services(settings)
    services.crm = crm.name
    for email in {m.email for m in services.router.team.members}:  # type: ignore[union-attr]
        crm.seed_owner(email, email.split("@")[0])
    api = TestClient(create_app(settings, engine=engine, leads=services, crm=crm,
                                clock=lambda: clock[0]))  # fmt: skip
    yield engine, api, clock
    engine.dispose()


def sg(api: TestClient, clock: list[datetime], items: list[dict[str, Any]]) -> None:
    body = json.dumps(items).encode()
    ts = str(int(clock[0].timestamp()))
    r = api.post("/webhooks/sendgrid/events", content=body, headers={
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
        "X-Twilio-Email-Event-Webhook-Signature": sign(body, ts),
    })  # fmt: skip
    assert r.status_code in (200, 204), r.text


def test_every_figure_of_every_report(world: Any) -> None:
    engine, api, clock = world
    Path("prospects.csv").write_text(CSV)
    cli("import", "prospects.csv")
    cli("enroll", "enterprise-outbound", "--all", "--owner", SAM, "--now", "2026-11-30T16:00:00Z")
    cli("run", "--now", "2026-11-30T16:25:00Z")
    with engine.connect() as conn:
        # The tick refreshed the rollups itself: no report has run yet.
        sent = conn.execute(
            select(func.sum(rollup_counts.c.n)).where(rollup_counts.c.metric == "sent")
        ).scalar()
        assert sent == 6
        intro = {
            r.email: r
            for r in conn.execute(
                select(prospects.c.email, touches.c.key, touches.c.variant)
                .join(enrollments, enrollments.c.prospect_id == prospects.c.id)
                .join(touches, touches.c.enrollment_id == enrollments.c.id)
                .where(touches.c.step_id == "intro")
            )
        }
    assert set(intro) == set(PEOPLE) and {r.variant for r in intro.values()} <= {"a", "b"}
    variant = {e: intro[e].variant for e in PEOPLE}

    # SendGrid: all six delivered, p0 and p1 open (p0 twice: one open counts), p1 clicks,
    # p4 reports spam. Sent a little after the intro (webhook time = the app's clock).
    clock[0] = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    t = int(clock[0].timestamp()) - 30

    def ev(email: str, kind: str) -> dict[str, Any]:
        return {"email": email, "timestamp": t, "event": kind, "sg_event_id": uuid.uuid4().hex,
                "sg_message_id": "m.filter0001", "touch_key": intro[email].key}  # fmt: skip

    sg(api, clock, [ev(e, "delivered") for e in PEOPLE])
    sg(api, clock, [ev(PEOPLE[0], "open"), ev(PEOPLE[0], "open"), ev(PEOPLE[1], "open"),
                    ev(PEOPLE[1], "click"), ev(PEOPLE[4], "spamreport")])  # fmt: skip

    cli("event", PEOPLE[1], "reply", "--at", "2026-12-01T10:00:00Z")
    cli("event", PEOPLE[1], "reply", "--at", "2026-12-01T12:00:00Z")  # the same reply: once
    cli("event", PEOPLE[2], "bounce", "--at", "2026-11-30T18:00:00Z")
    cli("event", PEOPLE[3], "unsubscribe", "--at", "2026-12-01T11:00:00Z")
    # p4's spam report opted them out too; it counts as spam_reported, not opted_out.
    cli("run", "--now", "2026-12-02T20:00:00Z")  # call tasks for p0 and p5 (p4 opted out)
    tasks_out = cli("tasks", "--owner", SAM)
    assert "Tasks (open): 2" in tasks_out
    # Which task is whose: the tick creates them in no promised order among touches due
    # at the same moment (task 1 was p5's in some runs).
    with engine.connect() as conn:
        task_of = dict(
            conn.execute(
                select(prospects.c.email, tasks.c.id)
                .join(enrollments, enrollments.c.prospect_id == prospects.c.id)
                .join(tasks, tasks.c.enrollment_id == enrollments.c.id)
            ).all()
        )
    assert set(task_of) == {PEOPLE[0], PEOPLE[5]}
    cli("task", "done", str(task_of[PEOPLE[0]]), "--outcome", "meeting_booked",
        "--now", "2026-12-02T20:30:00Z")  # fmt: skip
    cli("task", "done", str(task_of[PEOPLE[5]]), "--outcome", "voicemail",
        "--now", "2026-12-02T20:40:00Z")  # fmt: skip

    # Two inbound leads: scored, routed to an AE, enrolled in inbound-fast-follow.
    clock[0] = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    for i, lead in enumerate(LEADS):
        r = api.post(
            "/leads", json=lead, headers={"X-API-Key": API_KEY, "Idempotency-Key": f"k{i}"}
        )
        assert r.status_code == 201, r.text
    cli("run", "--now", "2026-12-03T15:10:00Z")  # the AE's welcome emails
    cli("run", "--now", "2026-12-03T21:00:00Z")  # p5's LinkedIn task

    now = "2026-12-03T21:05:00Z"
    with engine.connect() as conn:
        routed = conn.execute(select(route_assignments)).all()
        inbound = conn.execute(
            select(prospects.c.email, enrollments.c.owner_email, enrollments.c.id)
            .join(enrollments, enrollments.c.prospect_id == prospects.c.id)
            .where(enrollments.c.cadence_id == "inbound-fast-follow")
        ).all()
        welcome = conn.execute(
            select(
                touches.c.enrollment_id,
                touches.c.variant,
                touches.c.step_id,
                touches.c.channel,
                touches.c.executed_at,
                touches.c.status,
            ).where(touches.c.enrollment_id.in_([r.id for r in inbound]))
        ).all()
        sql_people = set(
            conn.execute(
                select(prospects.c.email)
                .join(score_history, score_history.c.prospect_id == prospects.c.id)
                .where(score_history.c.lifecycle == "sql")
            ).scalars()
        )
    assert len(routed) == 2 and len(inbound) == 2
    assert {w.status for w in welcome} == {"sent"} and len(welcome) >= 2
    aes = {r.owner_email for r in inbound}

    # -- cadences ------------------------------------------------------------------------
    rows = report("cadences", "--now", now)
    got = {(r["cadence"], r["step"], r["variant"]): r for r in rows}
    expect: dict[tuple[str, str, str | None], dict[str, int]] = {}
    zero = dict.fromkeys(["sent", "delivered", "opened", "clicked", "replied", "bounced",
                          "opted_out", "meetings"], 0)  # fmt: skip

    def add(key: tuple[str, str, str | None], **kw: int) -> None:
        row = expect.setdefault(key, dict(zero))
        for k, v in kw.items():
            row[k] += v

    eo = "enterprise-outbound"
    for i, e in enumerate(PEOPLE):
        add((eo, "intro", variant[e]), sent=1, delivered=1,
            opened=int(i in (0, 1)), clicked=int(i == 1), replied=int(i == 1),
            bounced=int(i == 2), opted_out=int(i == 3))  # fmt: skip
    add((eo, "call-1", None), sent=2, meetings=1)  # p0 and p5; p0 booked
    add((eo, "linkedin-connect", None), sent=1)  # p5 after the voicemail
    for w in welcome:
        add(("inbound-fast-follow", w.step_id, w.variant), sent=1)
    assert set(got) == set(expect)
    a_b = {v: expect[(eo, "intro", v)] for v in ("a", "b") if (eo, "intro", v) in expect}
    p = prob_best({v: (c["replied"], c["sent"]) for v, c in a_b.items()})
    for key, counts in expect.items():
        row = got[key]
        assert {k: row[k] for k in counts} == counts, key
        low, high = wilson_interval(counts["replied"], counts["sent"])
        assert row["reply_rate"] == pytest.approx(counts["replied"] / counts["sent"])
        assert (row["reply_rate_low"], row["reply_rate_high"]) == pytest.approx(
            (low, high), abs=1e-6
        )
        if key[1] == "intro" and len(a_b) == 2:
            leader = max(sorted(p), key=lambda v: p[v])
            assert (row["leader"], row["decision"]) == (leader, "not enough data")
            assert row["prob_best"] == pytest.approx(p[leader], abs=1e-4)
        else:
            assert row["leader"] is None and row["decision"] is None

    # Filters: a cadence, an owner, a day range.
    only = report("cadences", "--cadence", "inbound-fast-follow")
    assert {r["cadence"] for r in only} == {"inbound-fast-follow"}
    assert sum(r["sent"] for r in report("cadences", "--owner", SAM)) == 9
    assert sum(
        r["sent"] for r in report("cadences", "--from", "2026-12-03", "--to", "2026-12-03")
    ) == 1 + len(welcome)
    # The reply and the bounce land on the intro's day (30 Nov), not the day they came.
    assert sum(r["replied"] for r in report("cadences", "--from", "2026-12-01")) == 0

    # -- funnel --------------------------------------------------------------------------
    fun = {(r["cadence"], r["stage"]): r for r in report("funnel")}
    # engaged: p0 (open, meeting), p1 (open, click, reply); replied: p1, and p0 via its meeting.
    eo_counts = {"prospect": 6, "contacted": 6, "engaged": 2, "replied": 2, "meeting": 1,
                 "sql": len(sql_people & set(PEOPLE))}  # fmt: skip
    for stage, n in eo_counts.items():
        assert fun[(eo, stage)]["count"] == n, stage
    assert fun[(eo, "contacted")]["conversion"] == 1.0
    assert fun[(eo, "engaged")]["conversion"] == pytest.approx(2 / 6, abs=1e-6)
    assert fun[(eo, "meeting")]["conversion"] == pytest.approx(0.5)
    # enrolled 16:00, intro 16:25 -> 25 minutes; open at 16:59:30 -> 34.5 minutes after it.
    assert fun[(eo, "contacted")]["median_hours_from_previous"] == pytest.approx(25 / 60, abs=1e-3)
    assert fun[(eo, "engaged")]["median_hours_from_previous"] == pytest.approx(34.5 / 60, abs=1e-3)
    inbound_sql = len(sql_people & {ld["email"] for ld in LEADS})
    assert fun[("inbound-fast-follow", "prospect")]["count"] == 2
    assert fun[("inbound-fast-follow", "contacted")]["count"] == 2
    assert fun[("inbound-fast-follow", "sql")]["count"] == inbound_sql
    assert fun[("(all)", "prospect")]["count"] == 8
    assert fun[("(all)", "meeting")]["count"] == 1

    # -- workload ------------------------------------------------------------------------
    work = {r["owner"]: r for r in report("workload", "--now", now)}
    sam = work[SAM]
    # Open: p5's LinkedIn task (due 21:00 <= now: overdue). No email from Sam on 3 Dec.
    assert (sam["open_tasks"], sam["overdue_tasks"], sam["touches_today"]) == (1, 1, 0)
    assert sam["mailbox_daily_cap"] == 500 and sam["role"] == "sdr"
    for ae in aes:
        mine = {r.id for r in inbound if r.owner_email == ae}
        emails = sum(1 for w in welcome if w.enrollment_id in mine and w.channel == "email")
        assert work[ae]["leads_assigned_today"] == len(mine)
        assert work[ae]["touches_today"] == emails
        assert work[ae]["daily_capacity"] is not None and work[ae]["role"] == "ae"
    assert work[SAM]["leads_assigned_today"] == 0

    # -- speed to lead -------------------------------------------------------------------
    stl = report("speed_to_lead", "--now", now)
    assert sum(r["leads"] for r in stl) == 2 and {r["ae"] for r in stl} == aes
    for r in stl:
        assert r["touched"] == r["leads"]
        # assigned at 15:00 (the API's clock), first touch at the 15:10 tick.
        assert r["median_minutes"] == pytest.approx(10.0) and r["p90_minutes"] == pytest.approx(
            10.0
        )
        assert r["sla_misses"] == 0 and r["rerouted"] == 0
        assert r["source"] == "api:leads"

    # -- deliverability ------------------------------------------------------------------
    dl = {(r["mailbox"], r["domain"]): r for r in report("deliverability")}
    total = dl[(SAM, "*")]
    assert (total["sent"], total["delivered"], total["bounced"], total["spam_reported"]) == (
        6,
        6,
        1,
        1,
    )
    assert total["bounce_rate"] == pytest.approx(1 / 6, abs=1e-6)
    assert total["spam_rate"] == pytest.approx(1 / 6, abs=1e-6)
    assert total["bounce_shield"] == "under 50 sends" and total["spam"] == "over 0.3%"
    for d in range(3):
        row = dl[(SAM, f"acme{d}.example")]
        assert row["sent"] == 2 and row["delivered"] == 2
        assert row["bounced"] == int(d == 2) and row["spam_reported"] == int(d == 1)
    # The dashboard's view: per mailbox its worst domain (acme1's complaint and acme2's bounce
    # tie at one: by name), the rest one (other) row that makes up the mailbox's total.
    worst = [
        (r["domain"], r["sent"], r["bounced"], r["spam_reported"])
        for r in report("deliverability", "--worst-domains", "1")
        if r["mailbox"] == SAM
    ]
    assert worst == [("*", 6, 1, 1), ("acme1.example", 2, 0, 1), ("(other)", 4, 1, 0)]
    five = report("deliverability", "--worst-domains", "5")
    assert [r["domain"] for r in five if r["mailbox"] == SAM] == [
        "*", "acme1.example", "acme2.example", "(other)"]  # fmt: skip

    # The same figures straight from the ledger; a refresh finds nothing new.
    from touchflow.domain.compliance import CapPolicy
    from touchflow.services.reporting import REPORTS, ReportContext, ReportQuery, run_report

    at = datetime(2026, 12, 3, 21, 5, tzinfo=UTC)
    for name in REPORTS:
        fast = run_report(engine, name, ReportQuery(), ReportContext(now=at, caps=CapPolicy()))
        slow = run_report(engine, name, ReportQuery(),
                          ReportContext(now=at, caps=CapPolicy(), source="ledger"))  # fmt: skip
        assert fast.rows == slow.rows, name
    # Domains under 3 sends from a mailbox: one "(other)" row (all three here, 2 sends each).
    small = [
        run_report(engine, "deliverability", ReportQuery(),
                   ReportContext(now=at, caps=CapPolicy(), domain_min_sends=3, source=src)).rows
        for src in ("rollups", "ledger")
    ]  # fmt: skip
    assert small[0] == small[1]
    by_domain = {r["domain"]: r for r in small[0] if r["mailbox"] == SAM}
    assert set(by_domain) == {"*", "(other)"}
    other = by_domain["(other)"]
    assert (other["sent"], other["delivered"], other["bounced"], other["spam_reported"]) == (
        6, 6, 1, 1)  # fmt: skip

    # CSV, and an unknown report.
    csv_out = cli("report", "deliverability", "--csv").splitlines()
    assert csv_out[0].startswith("mailbox,domain,sent,delivered,bounced")
    bad = runner.invoke(app, ["report", "cadense"])
    assert bad.exit_code == 2 and "did you mean 'cadences'" in bad.stderr


def test_report_without_a_name_lists_them(project: Path) -> None:
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 2 and "cadences, funnel, workload" in result.stderr
