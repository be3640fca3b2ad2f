"""Three simulated weeks of the sample cadences through the real flow (``make demo``).

Sets up a fresh SQLite database and a local SMTP sink in ``demo-run/``,
imports ~500 generated prospects (malformed rows are rejected and written
aside, or loaded with a warning), enriches, scores and routes them and pushes
the qualified leads to an in-memory CRM, enrolls them in ``enterprise-outbound`` (and a few inbound
leads in ``inbound-fast-follow``), then advances a clock hour by hour and runs
the ``run_cadences`` flow at every hour where something is due. Between ticks
the "SDRs" work their due tasks and some prospects reply, bounce, unsubscribe
or book a meeting, deterministically. Ends with a summary, then loads three
years of generated deal history (``demo-run/deals/``) through the service
``touchflow deals import`` uses, takes a pipeline snapshot, and prints the
forecast as of 1 December 2026 and the quarterly backtest (touchflow's MAPE
beside the naive stage-weighted pipeline's and the commit call's).
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from touchflow.adapters.smtp.sink import LocalSmtpSink
from touchflow.demo.data import generate_rows, write_csv
from touchflow.domain.cadence import load_cadence
from touchflow.services.account_replies import apply_reply
from touchflow.services.importer import run_import
from touchflow.settings import Settings, SmtpSettings
from touchflow.store.db import upgrade
from touchflow.store.enrollments import apply_exit_event, enroll
from touchflow.store.schema import enrollments, tasks, touches

# Aliased: run_demo's `prospects` parameter (a count) would shadow the table.
from touchflow.store.schema import prospects as prospect_rows
from touchflow.store.tasks import complete_tasks, list_tasks

START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # a Monday morning in Europe
TASK_OUTCOMES = [
    ("completed", 40),
    ("no_answer", 25),
    ("voicemail", 20),
    ("connected", 8),
    ("meeting_booked", 4),
    ("not_interested", 3),
]


def run_demo(*, prospects: int, days: int, workdir: Path, console: Console) -> dict[str, Any]:
    """Run the demo; return headline counts (also printed as tables)."""
    from touchflow.bootstrap import (
        database,
        load_settings,
        pinned_settings,
        runtimes,
        sender_defaults,
    )
    from touchflow.entrypoints.flows.local import local_prefect
    from touchflow.entrypoints.flows.run_cadences import run_cadences

    t0 = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    rng = random.Random(2026)
    with LocalSmtpSink(directory=workdir / "sink") as sink:
        settings = load_settings(
            database_url=f"sqlite:///{workdir / 'touchflow.db'}",
            outbox_dir=workdir / "outbox",
            email_transport="smtp",
            smtp=SmtpSettings(host=sink.host, port=sink.port),
        )
        engine = database(settings)
        upgrade(engine)
        cache = runtimes(settings)
        sender = sender_defaults(settings)

        csv_path = write_csv(workdir / "prospects.csv", generate_rows(prospects))
        summary = run_import(
            engine, csv_path, now=START, workers=0, rejects_path=workdir / "prospects.rejects.csv"
        )
        console.print(str(summary), markup=False)
        _qualify(engine, settings, console)
        with engine.connect() as conn:
            good = list(conn.execute(select(prospect_rows.c.email)).scalars())

        outbound = load_cadence(
            settings.cadences_dir / "enterprise-outbound.yaml",
            settings.templates_dir,
            settings.calendars_file,
        )
        inbound = load_cadence(
            settings.cadences_dir / "inbound-fast-follow.yaml",
            settings.templates_dir,
            settings.calendars_file,
        )
        with engine.begin() as conn:
            res = enroll(
                conn,
                cache.add(outbound),
                None,
                owner_email=settings.sender.owner_email,
                sender=sender,
                now=START,
            )
            # A handful of inbound form fills arrive on day one and get the fast follow.
            res_in = enroll(
                conn,
                cache.add(inbound),
                list(range(1, 26)),
                owner_email=settings.sender.owner_email,
                sender=sender,
                now=START + timedelta(hours=9),
            )
        console.print(
            f"enrolled {res.enrolled} in {outbound.id}, {res_in.enrolled} in {inbound.id}"
        )

        fate = {email: rng.random() for email in good}
        ticks = 0
        now = START
        end = START + timedelta(days=days)
        # The flow loads its settings when it runs, as on a worker: pin the demo's.
        with local_prefect(), pinned_settings(settings):
            while now <= end:
                with engine.connect() as conn:
                    next_due = conn.execute(select(func.min(enrollments.c.next_due_at))).scalar()
                if next_due is not None and next_due <= now:
                    run_cadences(now=now)
                    ticks += 1
                _work_tasks(engine, cache, sender, now, rng)
                _prospects_answer(engine, cache, now, fate, rng)
                now += timedelta(hours=1)
        received = sink.count
    counts = _summary(engine, console, received, ticks, time.monotonic() - t0)
    counts.update(_deals_and_forecast(engine, settings, workdir, console))
    return counts


def _deals_and_forecast(
    engine, settings: Settings, workdir: Path, console: Console
) -> dict[str, Any]:
    """The generated deal history in, a snapshot, the forecast and its backtest out."""
    from touchflow.bootstrap import pipeline
    from touchflow.demo import deal_history
    from touchflow.entrypoints.cli.forecast import forecast_table, print_backtest
    from touchflow.services.deals import import_deals, take_snapshot
    from touchflow.services.forecasting import run_backtest, run_forecast

    t0 = time.monotonic()
    history = deal_history.generate()
    as_of = history.as_of
    deals_csv, stages_csv, dates_csv = deal_history.write_csvs(workdir / "deals", history)
    config = pipeline(settings)
    loaded = import_deals(
        engine, deals_csv, config, as_of, history_path=stages_csv, close_dates_path=dates_csv
    )
    console.print(f"deal history ({deals_csv.parent}): {loaded}", markup=False)
    snapped = take_snapshot(engine, as_of.date())
    console.print(f"pipeline snapshot {as_of.date()}: {snapped} open deals", markup=False)
    f = run_forecast(engine, config, as_of, periods=2)
    console.print(forecast_table(f))
    result = run_backtest(engine, config, start=date(2025, 1, 1), end=date(2026, 12, 31), now=as_of)
    print_backtest(console, result)
    console.print(
        f"[bold]deal history, forecast and backtest in {time.monotonic() - t0:.1f} s; "
        "the same with `touchflow forecast --as-of 2026-12-01` and "
        "`touchflow forecast --backtest --from 2025-01-01 --to 2026-12-31 --now 2026-12-01` "
        f"(TOUCHFLOW_DATABASE_URL=sqlite:///{workdir / 'touchflow.db'})[/bold]"
    )
    return {
        "deals": loaded.counts.new,
        "open_deals": len(f.deals),
        "backtest_periods": len(result.periods),
        "mape_touchflow": result.mape("touchflow"),
        "mape_naive": result.mape("naive"),
        "mape_commit": result.mape("commit"),
        "interval_coverage": result.interval_coverage,
    }


def _qualify(engine, settings: Settings, console: Console) -> None:
    """Enrich, score and route the imported base, and push the routed leads to a CRM.

    The CRM is the in-memory one: the same code pushes to HubSpot, Salesforce
    or Pipedrive (see the README for their local stand-ins).
    """
    from touchflow.adapters.enrichment.offline import OfflineEnricher
    from touchflow.adapters.fake_crm import FakeCrm
    from touchflow.domain.routing import load_router
    from touchflow.domain.scoring import load_icp
    from touchflow.services.crm_sync import drain_outbox
    from touchflow.services.enrichment import enrich_accounts
    from touchflow.services.routing import route_qualified
    from touchflow.store.scores import rescore

    crm = FakeCrm()
    router = load_router(settings.config_dir)
    for member in router.team.members:
        crm.seed_owner(member.email, member.email.split("@")[0])
    with engine.begin() as conn:
        enriched = enrich_accounts(
            conn, OfflineEnricher(settings.config_dir / "firmographics.csv"), START
        )
        scored = rescore(conn, load_icp(settings.config_dir / "icp.yaml"), START)
        decisions = route_qualified(conn, router, START, crm=crm.name)
    pushed = drain_outbox(engine, crm, START, limit=len(decisions) + 1).pushed
    console.print(
        f"enriched {enriched.enriched} accounts; scored {scored.scored}: "
        + ", ".join(f"grade {g} {n}" for g, n in scored.by_grade.items())
        + "; "
        + ", ".join(f"{k} {n}" for k, n in scored.by_lifecycle.items())
    )
    per_ae = Counter(d.assignee for d in decisions)
    t = Table(title=f"{len(decisions)} MQL/SQL leads routed; {pushed} pushed to the CRM")
    t.add_column("assignee")
    t.add_column("leads", justify="right")
    for who, n in per_ae.most_common():
        t.add_row(who, str(n))
    console.print(t)


def _work_tasks(engine, cache, sender, now: datetime, rng: random.Random) -> None:
    """SDRs work the tasks that are due, within the hour."""
    with engine.begin() as conn:
        due = [t for t in list_tasks(conn) if t.due_at <= now]
        for t in due:
            outcome = rng.choices([o for o, _ in TASK_OUTCOMES], [w for _, w in TASK_OUTCOMES])[0]
            if t.channel != "call" and outcome not in ("completed", "meeting_booked"):
                outcome = "completed"
            complete_tasks(conn, cache, sender, [t.id], outcome=outcome, at=now, notes="demo SDR")


def _prospects_answer(
    engine, cache, now: datetime, fate: dict[str, float], rng: random.Random
) -> None:
    """Some prospects reply, bounce, unsubscribe or book, a few hours after an email."""
    prospects = prospect_rows
    window_start = now - timedelta(hours=1)
    with engine.begin() as conn:
        rows = conn.execute(
            select(prospects.c.id, prospects.c.email, touches.c.step_id)
            .join(enrollments, enrollments.c.prospect_id == prospects.c.id)
            .join(touches, touches.c.enrollment_id == enrollments.c.id)
            .where(
                touches.c.channel == "email",
                touches.c.status == "sent",
                touches.c.executed_at > window_start - timedelta(hours=3),
                touches.c.executed_at <= window_start - timedelta(hours=2),
            )
        ).all()
        for pid, email, step_id in rows:
            f = fate[email]
            kind = None
            if step_id == "intro" and f < 0.02:
                kind = "bounce"
            elif f < 0.03:
                kind = "unsubscribe"
            elif f < 0.12 and rng.random() < 0.35:
                kind = "reply"
            elif f < 0.14 and rng.random() < 0.2:
                kind = "meeting_booked"
            if kind == "reply":  # the colleagues' on_account_reply applies too
                apply_reply(conn, cache, pid, now, source="demo")
            elif kind:
                apply_exit_event(conn, cache, pid, kind, now, source="demo")


def _summary(engine, console: Console, received: int, ticks: int, seconds: float) -> dict[str, Any]:
    with engine.connect() as conn:
        by_day: dict[str, Counter[str]] = {}
        for at, channel, n in conn.execute(
            select(func.date(touches.c.executed_at), touches.c.channel, func.count())
            .where(touches.c.status == "sent")
            .group_by(func.date(touches.c.executed_at), touches.c.channel)
        ):
            by_day.setdefault(str(at), Counter())[channel] += n
        by_status = Counter(
            dict(
                ((c, s), n)
                for c, s, n in conn.execute(
                    select(touches.c.channel, touches.c.status, func.count()).group_by(
                        touches.c.channel, touches.c.status
                    )
                )
            )
        )
        task_counts = Counter(
            dict(conn.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status)).all())
        )
        task_outcomes = Counter(
            dict(
                conn.execute(
                    select(tasks.c.outcome, func.count())
                    .where(tasks.c.outcome.is_not(None))
                    .group_by(tasks.c.outcome)
                ).all()
            )
        )
        final = conn.execute(
            select(
                enrollments.c.cadence_id, enrollments.c.state, enrollments.c.reason, func.count()
            )
            .group_by(enrollments.c.cadence_id, enrollments.c.state, enrollments.c.reason)
            .order_by(enrollments.c.cadence_id, func.count().desc())
        ).all()
        variants = conn.execute(
            select(touches.c.step_id, touches.c.variant, func.count())
            .where(touches.c.variant.is_not(None))
            .group_by(touches.c.step_id, touches.c.variant)
        ).all()

    channels = ["email", "sms", "call", "linkedin", "task"]
    t = Table(title="Touches by day (UTC) and channel")
    t.add_column("day")
    for c in channels:
        t.add_column(c, justify="right")
    for day in sorted(by_day):
        t.add_row(day, *(str(by_day[day][c] or "") for c in channels))
    console.print(t)

    s = Table(title="Ledger")
    for col in ("channel", "status", "touches"):
        s.add_column(col, justify="right" if col == "touches" else "left")
    for (c, st), n in sorted(by_status.items()):
        s.add_row(c, st, str(n))
    console.print(s)

    k = Table(title="Tasks")
    k.add_column("")
    k.add_column("count", justify="right")
    k.add_row("created", str(sum(task_counts.values())))
    for st, n in sorted(task_counts.items()):
        k.add_row(f"  {st}", str(n))
    for outcome, n in sorted(task_outcomes.items()):
        k.add_row(f"  outcome {outcome}", str(n))
    console.print(k)

    e = Table(title="Enrollments by final state and reason")
    for col in ("cadence", "state", "reason", "count"):
        e.add_column(col, justify="right" if col == "count" else "left")
    for cid, st, reason, n in final:
        e.add_row(cid, st, reason or "", str(n))
    console.print(e)
    if variants:
        v = Table(title="A/B variants sent")
        for col in ("step", "variant", "count"):
            v.add_column(col)
        for step, var, n in variants:
            v.add_row(step, var, str(n))
        console.print(v)
    sent_email = sum(n for (c, st), n in by_status.items() if c == "email" and st == "sent")
    console.print(
        f"[bold]{ticks} ticks through the run_cadences flow in {seconds:.0f} s; "
        f"{received} emails received by the local SMTP sink "
        f"({sent_email} recorded sent in the ledger)[/bold]"
    )
    return {
        "ticks": ticks,
        "emails_received": received,
        "emails_sent": sent_email,
        "tasks": sum(task_counts.values()),
    }
