"""Benchmark: the dashboard's reports at scale, beside the straightforward GROUP BY.

Generates, by set-based SQL on PostgreSQL (``INSERT ... SELECT generate_series``,
seeded ``random()``; minutes, not hours): ``--enrollments`` (1,000,000)
enrollments of as many prospects at ~``--domains`` accounts, ``--per``
(10) touches each (7 email steps with A/B variants, 2 calls, 1 SMS; 3% failed),
their events at realistic rates per email (delivered 95%, opened 40%, clicked
4%, replied 3%, bounced 1.5%, spam 0.1%, unsubscribed 0.5%, meeting 0.5%;
SMS delivered), a task and its completion per call, SQL scorings (5%), routed
leads (5%), and ``--deals`` (50,000) deals at the accounts with 1-5 stage
changes each. Then it measures in the same run:

* ``load_s`` (the generation) and ``backfill_s`` (the first rollup refresh over
  the whole history: the high-water-mark fold, one round per 20,000 rows);
* per report: p50/p95 (ms) of ``run_report(..., fresh=False)`` from the read
  model, and ``ledger_*``: the same report by straightforward GROUP BYs over
  the ledger (``ReportContext(source="ledger")``), the rows asserted equal;
* ``tick``: ``--tick`` (10,000) more touches with their events, then the
  refresh that folds them (``refresh_after_tick_s``), and the ``cadences``
  report's ``sent`` before and after: the tick is in the report right after
  the refresh, so the rollups are never more than one tick behind.

PostgreSQL: ``TOUCHFLOW_BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/tf_bench_dash``), into a fresh schema
dropped afterwards (``--keep`` keeps it). SQLite with ``--sqlite``, generated in
Python (``--sqlite-enrollments``, default 20,000: SQLite has no generate_series
and the fold is single-threaded). The last line is one JSON object.

Run: ``.venv/bin/python bench/dashboard.py [--enrollments N] [--per N] [--deals N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, func, insert, select, text  # noqa: E402

from touchflow.domain.compliance import CapPolicy  # noqa: E402
from touchflow.domain.pipeline import load_pipeline  # noqa: E402
from touchflow.domain.routing import team_from_yaml  # noqa: E402
from touchflow.services import reporting  # noqa: E402
from touchflow.services.committee_coverage import coverage_by_deal  # noqa: E402
from touchflow.services.reporting import (  # noqa: E402
    REPORTS,
    ReportContext,
    ReportQuery,
    run_report,
)
from touchflow.store import rollups  # noqa: E402
from touchflow.store.db import make_engine, upgrade  # noqa: E402
from touchflow.store.schema import (  # noqa: E402
    cadence_versions,
    deal_stage_changes,
    deals,
    rollup_counts,
)

T0 = datetime(2026, 1, 1, 8, 0)  # naive UTC, as stored
DAYS = 330
CADENCES = ["enterprise-outbound", "mid-market", "inbound-fast-follow", "renewal"]
OWNERS = [f"rep{i}@yourco.example" for i in range(12)]
STEPS = [  # step, channel, A/B
    ("intro", "email", True),
    ("bump-1", "email", True),
    ("call-1", "call", False),
    ("bump-2", "email", False),
    ("sms-nudge", "sms", False),
    ("case-study", "email", True),
    ("call-2", "call", False),
    ("bump-3", "email", False),
    ("referral", "email", False),
    ("breakup", "email", False),
]
EMAIL_EVENTS = [  # type, rate per sent email
    ("delivered", 0.95),
    ("opened", 0.40),
    ("clicked", 0.04),
    ("replied", 0.03),
    ("bounce", 0.015),
    ("spamreport", 0.001),
    ("unsubscribe", 0.005),
    ("meeting_booked", 0.005),
]
STAGES = ["discovery", "qualification", "demo", "proposal", "negotiation"]
CATEGORY = {"discovery": "pipeline", "qualification": "pipeline", "demo": "best_case",
            "proposal": "best_case", "negotiation": "commit"}  # fmt: skip
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# Every sent email's events at EMAIL_EVENTS' rates (bench_rates). The draw names the
# touch (``+ 0 * t.id``): a condition on bench_rates alone is evaluated where bench_rates
# is scanned, and a materialized scan drew once for all 10M touches (every email
# delivered, none opened, replied or bounced: the first 1M run, 2026-12-06).
EMAIL_EVENTS_SQL = """INSERT INTO events (prospect_id, enrollment_id, touch_key, type,
        occurred_at, source, provider_event_id, payload, created_at)
    SELECT e.prospect_id, t.enrollment_id, t.key, r.type,
           t.executed_at + (r.ord + 1) * INTERVAL '47 minutes',
           'sendgrid', t.id || ':' || r.ord, '{}',
           t.executed_at + (r.ord + 1) * INTERVAL '47 minutes'
    FROM touches t JOIN enrollments e ON e.id = t.enrollment_id
    CROSS JOIN bench_rates r
    WHERE t.channel = 'email' AND t.status = 'sent' AND random() + 0 * t.id < r.rate"""


def _arr(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def pg_generate(engine: Engine, n_enr: int, per: int, n_domains: int, n_deals: int) -> None:
    """The whole history by INSERT ... SELECT generate_series, one statement per table."""
    steps = STEPS[:per] if per <= len(STEPS) else [*STEPS] * (per // len(STEPS) + 1)
    steps = steps[:per]
    step_ids = _arr([f"{s}" if i < len(STEPS) else f"{s}-{i}" for i, (s, _, _) in
                     enumerate(steps)])  # fmt: skip
    channels = _arr([c for _, c, _ in steps])
    ab = "ARRAY[" + ", ".join("true" if a else "false" for _, _, a in steps) + "]"
    owners, cads = _arr(OWNERS), _arr(CADENCES)
    stmts = [
        "SELECT setseed(0.42)",
        f"""INSERT INTO prospects (id, email, domain, fields, created_at, updated_at)
            SELECT i, 'u' || i || '@d' || (i % {n_domains}) || '.example',
                   'd' || (i % {n_domains}) || '.example', '{{}}',
                   TIMESTAMP '{T0}' + (i % {DAYS}) * INTERVAL '1 day',
                   TIMESTAMP '{T0}' + (i % {DAYS}) * INTERVAL '1 day'
            FROM generate_series(1, {n_enr}) i""",
        f"""INSERT INTO enrollments (id, prospect_id, cadence_id, cadence_version, state,
                step_index, attempt, owner_email, sender_email, enrolled_at, updated_at)
            SELECT i, i, ({cads})[1 + i % 4], 'v-' || ({cads})[1 + i % 4], 'active', 0, 1,
                   ({owners})[1 + (i / 7) % 12], ({owners})[1 + (i / 7) % 12],
                   TIMESTAMP '{T0}' + (i % {DAYS}) * INTERVAL '1 day'
                       + (i::bigint * 7919 % 36000) * INTERVAL '1 second',
                   TIMESTAMP '{T0}'
            FROM generate_series(1, {n_enr}) i""",
        f"""INSERT INTO touches (id, key, enrollment_id, step_id, channel, variant, status,
                due_at, executed_at, claimed_at)
            SELECT (e.id - 1) * {per} + s, e.id || '-' || ({step_ids})[s] || '-1', e.id,
                   ({step_ids})[s], ({channels})[s],
                   CASE WHEN ({ab})[s] THEN CASE WHEN random() < 0.5 THEN 'a' ELSE 'b' END END,
                   CASE WHEN random() < 0.97 THEN 'sent' ELSE 'failed' END,
                   e.enrolled_at + (s * 2 - 2) * INTERVAL '1 day' + INTERVAL '25 minutes',
                   e.enrolled_at + (s * 2 - 2) * INTERVAL '1 day' + INTERVAL '25 minutes',
                   e.enrolled_at + (s * 2 - 2) * INTERVAL '1 day' + INTERVAL '25 minutes'
            FROM enrollments e, generate_series(1, {per}) s""",
        """CREATE TEMP TABLE bench_rates (type text, rate float8, ord int)""",
        "INSERT INTO bench_rates VALUES "
        + ", ".join(f"('{t}', {r}, {i})" for i, (t, r) in enumerate(EMAIL_EVENTS)),
        EMAIL_EVENTS_SQL,
        """INSERT INTO events (prospect_id, enrollment_id, touch_key, type, occurred_at, source,
                provider_event_id, payload, created_at)
            SELECT e.prospect_id, t.enrollment_id, t.key, 'sms_delivered',
                   t.executed_at + INTERVAL '1 minute', 'twilio', 'sms:' || t.id, '{}',
                   t.executed_at + INTERVAL '1 minute'
            FROM touches t JOIN enrollments e ON e.id = t.enrollment_id
            WHERE t.channel = 'sms' AND t.status = 'sent' AND random() < 0.9""",
        """INSERT INTO tasks (touch_key, enrollment_id, step_id, channel, owner_email, title,
                status, outcome, due_at, created_at, completed_at)
            SELECT t.key, t.enrollment_id, t.step_id, 'call', e.owner_email, 'Call', 'done',
                   (ARRAY['voicemail', 'no_answer', 'connected', 'meeting_booked'])
                       [1 + (t.id % 4)],
                   t.executed_at, t.executed_at, t.executed_at + INTERVAL '2 hours'
            FROM touches t JOIN enrollments e ON e.id = t.enrollment_id
            WHERE t.channel = 'call' AND t.status = 'sent'""",
        """INSERT INTO events (prospect_id, enrollment_id, touch_key, type, occurred_at, source,
                payload, created_at)
            SELECT e.prospect_id, k.enrollment_id, k.touch_key, 'completed', k.completed_at,
                   'task', json_build_object('outcome', k.outcome), k.completed_at
            FROM tasks k JOIN enrollments e ON e.id = k.enrollment_id""",
        """INSERT INTO score_history (prospect_id, score, fit, engagement, grade, lifecycle,
                reasons, icp_version, scored_at)
            SELECT e.prospect_id, 80, 1, 1, 'A', 'sql', '[]', 'bench',
                   e.enrolled_at + INTERVAL '5 days'
            FROM enrollments e WHERE random() < 0.05""",
        f"""INSERT INTO route_assignments (prospect_id, assignee_email, rule, reason, status,
                assigned_at, sla_due_at)
            SELECT e.prospect_id, ({owners})[1 + e.id % 6], 'rr', 'bench', 'assigned',
                   e.enrolled_at - INTERVAL '10 minutes', e.enrolled_at + INTERVAL '50 minutes'
            FROM enrollments e WHERE random() < 0.05""",
        f"""INSERT INTO deals (source, deal_id, account_domain, owner_email, amount, currency,
                stage, forecast_category, created_at, close_date, closed_at, outcome, updated_at)
            SELECT 'csv', 'D' || i, 'd' || (i * 7 % {n_domains}) || '.example',
                   ({owners})[1 + i % 12], 5000 + (i * 37 % 95000), 'USD',
                   CASE WHEN i % 5 = 0 THEN 'closed_won' WHEN i % 5 = 1 THEN 'closed_lost'
                        ELSE (ARRAY{STAGES!r})[1 + i % 5] END,
                   CASE WHEN i % 5 = 0 THEN 'closed' WHEN i % 5 = 1 THEN 'omitted'
                        ELSE 'pipeline' END,
                   TIMESTAMP '{T0}' + (i % {DAYS}) * INTERVAL '1 day' + INTERVAL '3 days',
                   DATE '{T0.date()}' + (i % {DAYS}) + 90,
                   CASE WHEN i % 5 IN (0, 1) THEN TIMESTAMP '{T0}' + (i % {DAYS}) * INTERVAL
                        '1 day' + INTERVAL '60 days' END,
                   CASE WHEN i % 5 = 0 THEN 'won' WHEN i % 5 = 1 THEN 'lost' END,
                   TIMESTAMP '{T0}'
            FROM generate_series(1, {n_deals}) i""",
        f"""INSERT INTO deal_stage_changes (source, deal_id, stage, entered_at)
            SELECT 'csv', d.deal_id, (ARRAY{STAGES!r})[s], d.created_at + (s - 1) * INTERVAL
                   '9 days'
            FROM deals d, generate_series(1, 5) s WHERE s <= 1 + d.id % 5""",
        """INSERT INTO deal_stage_changes (source, deal_id, stage, entered_at)
            SELECT 'csv', deal_id, stage, closed_at FROM deals WHERE closed_at IS NOT NULL""",
        "SELECT setval(pg_get_serial_sequence('prospects', 'id'), (SELECT max(id) FROM prospects))",
        "SELECT setval(pg_get_serial_sequence('enrollments', 'id'),"
        " (SELECT max(id) FROM enrollments))",
        "SELECT setval(pg_get_serial_sequence('touches', 'id'), (SELECT max(id) FROM touches))",
    ]
    with engine.begin() as conn:
        for sql in stmts:
            t0 = time.perf_counter()
            conn.exec_driver_sql(sql.replace("%", "%%"))
            words = sql.split()
            if words[:2] == ["INSERT", "INTO"]:
                # Statistics now, in this transaction: without them the next INSERT ... SELECT
                # joins 10M touches to 1M enrollments by a nested loop (hours, not minutes).
                conn.exec_driver_sql(f"ANALYZE {words[2]}")
            print(f"  {words[0:3]} {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        conn.exec_driver_sql(
            "UPDATE deals SET forecast_category = CASE stage WHEN 'demo' THEN 'best_case'"
            " WHEN 'proposal' THEN 'best_case' WHEN 'negotiation' THEN 'commit'"
            " ELSE forecast_category END"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def pg_tick(engine: Engine, n: int) -> int:
    """``n`` more sent touches (new enrollments' intros a day after the history) and events."""
    with engine.begin() as conn:
        first = conn.execute(text("SELECT max(id) FROM enrollments")).scalar_one() + 1
        last = first + n - 1
        at = T0 + timedelta(days=DAYS + 1)
        conn.exec_driver_sql(
            f"""INSERT INTO prospects (id, email, domain, fields, created_at, updated_at)
            SELECT i, 'u' || i || '@tick.example', 'tick.example', '{{}}',
                   TIMESTAMP '{at}', TIMESTAMP '{at}' FROM generate_series({first}, {last}) i"""
        )
        conn.exec_driver_sql(
            f"""INSERT INTO enrollments (id, prospect_id, cadence_id, cadence_version, state,
                step_index, attempt, owner_email, sender_email, enrolled_at, updated_at)
            SELECT i, i, 'enterprise-outbound', 'v-enterprise-outbound', 'active', 0, 1,
                   'rep0@yourco.example', 'rep0@yourco.example', TIMESTAMP '{at}',
                   TIMESTAMP '{at}' FROM generate_series({first}, {last}) i"""
        )
        conn.exec_driver_sql(
            f"""INSERT INTO touches (key, enrollment_id, step_id, channel, variant, status,
                due_at, executed_at, claimed_at)
            SELECT i || '-intro-1', i, 'intro', 'email', 'a', 'sent', TIMESTAMP '{at}',
                   TIMESTAMP '{at}', TIMESTAMP '{at}' FROM generate_series({first}, {last}) i"""
        )
        conn.exec_driver_sql(
            f"""INSERT INTO events (prospect_id, enrollment_id, touch_key, type, occurred_at,
                source, payload, created_at)
            SELECT i, i, i || '-intro-1', 'delivered', TIMESTAMP '{at}' + INTERVAL '1 minute',
                   'sendgrid', '{{}}', TIMESTAMP '{at}'
            FROM generate_series({first}, {last}) i"""
        )
    return n


def sqlite_generate(engine: Engine, n_enr: int, n_deals: int) -> None:
    """SQLite: bench/reports.py's Python generator (~3.5 touches per enrollment), and deals."""
    spec = importlib.util.spec_from_file_location("bench_reports", ROOT / "bench" / "reports.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    b = mod.Builder(engine)
    b.history(int(n_enr * 3.5), datetime(2026, 10, 1, 8, tzinfo=UTC), 40)
    rng = random.Random(7)
    rows, changes = [], []
    for i in range(1, n_deals + 1):
        created = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=rng.uniform(0, 40))
        stage = rng.choice([*STAGES, "closed_won", "closed_lost"])
        closed = stage.startswith("closed")
        rows.append({
            "source": "csv", "deal_id": f"D{i}",
            "account_domain": f"d{rng.randint(0, 400)}.example",
            "owner_email": rng.choice(OWNERS), "amount": rng.randint(5000, 100000),
            "currency": "USD", "stage": stage,
            "forecast_category": {"closed_won": "closed", "closed_lost": "omitted"}.get(
                stage, CATEGORY.get(stage, "pipeline")),
            "created_at": created, "close_date": (created + timedelta(days=90)).date(),
            "closed_at": created + timedelta(days=30) if closed else None,
            "outcome": ("won" if stage == "closed_won" else "lost") if closed else None,
            "updated_at": created,
        })  # fmt: skip
        changes.append({"source": "csv", "deal_id": f"D{i}", "stage": stage, "entered_at": created})
    with engine.begin() as conn:
        conn.execute(insert(deals), rows)
        conn.execute(insert(deal_stage_changes), changes)


def _ms(samples: list[float]) -> tuple[float, float]:
    xs = sorted(samples)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return round(statistics.median(xs) * 1000, 1), round(p95 * 1000, 1)


def _sent(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.coalesce(func.sum(rollup_counts.c.n), 0)).where(
                    rollup_counts.c.metric == "sent"
                )
            ).scalar_one()
        )


def measure(
    engine: Engine,
    runs: int,
    ledger_runs: int,
    tick: int | None,
    only: list[str] | None = None,
    domain_min_sends: int = 1,
    endpoints: bool = True,
    fanout: bool = True,
    endpoint_runs: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"domain_min_sends": domain_min_sends}
    t0 = time.perf_counter()
    r = rollups.refresh(engine)
    out["backfill_s"] = round(time.perf_counter() - t0, 1)
    out["backfill_rounds"] = r.rounds
    print("backfill", out, file=sys.stderr, flush=True)
    pipeline = load_pipeline(ROOT / "config" / "pipeline.yaml")
    t0 = time.perf_counter()
    with engine.connect() as conn:  # the committee read model's first fill (once)
        coverage_by_deal(conn, pipeline)
    out["committee_fill_s"] = round(time.perf_counter() - t0, 1)
    team_yaml = "members:\n" + "".join(
        f"  - {{email: {o}, name: R{i}, quota: {{period: quarter, amount: 500000}}}}\n"
        for i, o in enumerate(OWNERS)
    )
    team = team_from_yaml(team_yaml, "bench-team.yaml")
    caps = CapPolicy()
    windows = {
        "all": ReportQuery(),
        "30d": ReportQuery(since=date(2026, 11, 1), until=date(2026, 11, 30)),
        "owner": ReportQuery(owner=OWNERS[3]),
    }
    if tick:
        before = _sent(engine)
        pg_tick(engine, tick)
        t0 = time.perf_counter()
        r = rollups.refresh(engine)
        out["refresh_after_tick_s"] = round(time.perf_counter() - t0, 3)
        out["tick_sent_in_rollups"] = _sent(engine) - before
        t0 = time.perf_counter()  # the first pipeline report after it: the committee update
        run_report(engine, "pipeline", ReportQuery(), ReportContext(
            now=NOW, caps=caps, team=team, pipeline=pipeline), fresh=False)  # fmt: skip
        out["pipeline_after_tick_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        t0 = time.perf_counter()
        rollups.refresh(engine)
        out["refresh_idle_s"] = round(time.perf_counter() - t0, 4)
        print("tick", {k: v for k, v in out.items() if "tick" in k or "idle" in k},
              file=sys.stderr, flush=True)  # fmt: skip
    if endpoints:
        # The admin scope's forecast and backtest as the daily snapshot computes and stores
        # them (a page view reads the stored result; other scopes compute on first view).
        from touchflow.services.forecasting import refresh_stored_forecast

        t0 = time.perf_counter()
        refresh_stored_forecast(engine, pipeline, NOW)
        out["forecast_stored_s"] = round(time.perf_counter() - t0, 1)
        print("forecast stored", out["forecast_stored_s"], file=sys.stderr, flush=True)
        out["endpoints"] = measure_endpoints(engine, endpoint_runs or runs, team_yaml,
                                             domain_min_sends)  # fmt: skip
    if fanout:
        out["fanout"] = measure_fanout()
    # "deliverability:worst": the dashboard's view (per mailbox its 20 worst recipient domains).
    names = [] if only == ["none"] else [*(only or list(REPORTS))]
    if "deliverability" in names:
        names.insert(names.index("deliverability") + 1, "deliverability:worst")
    for key_name in names:
        name, _, variant = key_name.partition(":")
        for label, q in windows.items():
            if label != "all" and name not in ("cadences", "funnel", "deliverability",
                                               "speed_to_lead"):  # fmt: skip
                continue
            common: dict[str, Any] = {
                "now": NOW,
                "caps": caps,
                "team": team,
                "pipeline": pipeline,
                "domain_min_sends": domain_min_sends,
                "domain_top": 20 if variant == "worst" else None,
            }
            fast_ctx = ReportContext(**common)
            slow_ctx = ReportContext(**common, source="ledger")  # fmt: skip
            fast, slow, cached = [], [], []
            for _ in range(runs):
                # Cold: as the first view after a refresh (the funnel is kept per rollups
                # generation; a repeat view is `cached_p50_ms`).
                reporting._FUNNEL_CACHE.clear()
                t0 = time.perf_counter()
                a = run_report(engine, name, q, fast_ctx, fresh=False)
                fast.append(time.perf_counter() - t0)
            if name == "funnel":
                for _ in range(runs):
                    t0 = time.perf_counter()
                    run_report(engine, name, q, fast_ctx, fresh=False)
                    cached.append(time.perf_counter() - t0)
            for _ in range(ledger_runs):
                t0 = time.perf_counter()
                s = run_report(engine, name, q, slow_ctx, fresh=False)
                slow.append(time.perf_counter() - t0)
            assert a.rows == s.rows, f"{name}/{label}: rollups and ledger disagree"
            f50, f95 = _ms(fast)
            s50, s95 = _ms(slow)
            key = key_name if label == "all" else f"{key_name}[{label}]"
            out[key] = {"p50_ms": f50, "p95_ms": f95, "ledger_p50_ms": s50, "ledger_p95_ms": s95,
                        "speedup_p50": round(s50 / f50, 1) if f50 else None,
                        "rows": len(a.rows)}  # fmt: skip
            if cached:
                out[key]["cached_p50_ms"] = _ms(cached)[0]
            print(key, out[key], file=sys.stderr, flush=True)
    return out


PAGES = ("overview", "cadences", "team", "deliverability", "accounts", "pipeline")
SLOW_PAGES: dict[str, int] = {}  # pages measured once (accounts was, before its paging)


def measure_endpoints(
    engine: Engine, runs: int, team_yaml: str, domain_min_sends: int = 1
) -> dict[str, Any]:
    """p50/p95 of each dashboard data endpoint over HTTP (in-process client, X-API-Key:
    an admin's view), the default 14 days, 30 and 90 days (the longest preset), the
    longest window a page takes (366 days: ``from``/``to``) and one owner; ``first_ms`` the
    first call (the forecast and its backtest are cached per process after it)."""
    from fastapi.testclient import TestClient

    from touchflow.entrypoints.api import create_app
    from touchflow.settings import Settings

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config"
        config.mkdir()
        (config / "pipeline.yaml").write_text((ROOT / "config" / "pipeline.yaml").read_text())
        (config / "team.yaml").write_text(team_yaml)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            api_key="bench-key",
            config_dir=config,
            cadences_dir=Path(tmp) / "cadences",
            public_url="http://bench.example",
            unsubscribe_secret="x" * 32,
            reports={"domain_min_sends": domain_min_sends},
        )
        app = create_app(settings, engine=engine, clock=lambda: NOW)
        with TestClient(app) as client:
            for name in PAGES:
                year = f"from={NOW.date() - timedelta(days=365)}&to={NOW.date()}"  # the longest
                for label, qs in (("", "period=14"), ("[30d]", "period=30"), ("[90d]", "period=90"),
                                  ("[366d]", year),
                                  ("[owner]", f"period=30&owner={OWNERS[3]}")):  # fmt: skip
                    url = f"/api/dashboard/{name}?{qs}"
                    times, first, size = [], None, 0
                    for i in range(1 + SLOW_PAGES.get(name, runs)):
                        t0 = time.perf_counter()
                        r = client.get(url, headers={"X-API-Key": "bench-key"})
                        took = time.perf_counter() - t0
                        assert r.status_code == 200, (url, r.status_code, r.text[:300])
                        size = len(r.content)
                        if i == 0:
                            first = took
                        else:
                            times.append(took)
                    p50, p95 = _ms(times)
                    out[name + label] = {"p50_ms": p50, "p95_ms": p95,
                                         "first_ms": round((first or 0) * 1000, 1),
                                         "bytes": size}  # fmt: skip
                    print("endpoint", name + label, out[name + label], file=sys.stderr, flush=True)
    return out


def measure_fanout(subscribers: int = 200, events: int = 2000, rate: float = 500.0) -> Any:
    """bench/live.py's run: CPU per event fanned out to ``subscribers`` live dashboards."""
    import asyncio

    spec = importlib.util.spec_from_file_location("bench_live", ROOT / "bench" / "live.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    got = asyncio.run(mod.run(subscribers, events, rate))
    print("fanout", got, file=sys.stderr, flush=True)
    return got


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("enrollments", "touches", "events", "tasks", "deals", "deal_stage_changes")
        }


def _seed_cadences(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(cadence_versions), [
            {"version": f"v-{c}", "cadence_id": c, "yaml_text": "", "source_path": "",
             "templates": {}, "created_at": T0.replace(tzinfo=UTC)}
            for c in CADENCES
        ])  # fmt: skip


def run_pg(url: str, args: argparse.Namespace) -> dict[str, Any]:
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    schema = args.schema or f"bench_{uuid.uuid4().hex[:8]}"
    fresh = not args.schema
    if fresh:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{sep}options=-csearch_path%3D{schema}")
    out: dict[str, Any] = {"schema": schema}
    try:
        if fresh:
            upgrade(engine)
            _seed_cadences(engine)
            t0 = time.perf_counter()
            pg_generate(engine, args.enrollments, args.per, args.domains, args.deals)
            out["load_s"] = round(time.perf_counter() - t0, 1)
            if args.generate_only:
                out.update(_counts(engine))
                return out
        else:
            upgrade(engine)
            if args.reset:
                with engine.begin() as conn:
                    for t in ("rollup_counts", "rollup_cadence", "rollup_delivery",
                              "rollup_mailbox", "rollup_funnel", "rollup_seen", "rollup_marks",
                              "rollup_pending",
                              "committee_coverage", "read_model_state"):  # fmt: skip
                        conn.exec_driver_sql(f"TRUNCATE {t}")
        out.update(_counts(engine))
        print("loaded", out, file=sys.stderr, flush=True)
        out.update(measure(engine, args.runs, args.ledger_runs, args.tick, args.only,
                           args.domain_min_sends, not args.no_endpoints,
                           not args.no_fanout, args.endpoint_runs))  # fmt: skip
    finally:
        engine.dispose()
        if fresh and not (args.keep or args.generate_only):
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return out


def run_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        _seed_cadences(engine)
        t0 = time.perf_counter()
        sqlite_generate(engine, args.sqlite_enrollments, min(args.deals, 5000))
        out: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 1), **_counts(engine)}
        out.update(measure(engine, args.runs, args.ledger_runs, None, args.only,
                           args.domain_min_sends, not args.no_endpoints, False))  # fmt: skip
        engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--enrollments", type=int, default=1_000_000)
    ap.add_argument("--per", type=int, default=10, help="touches per enrollment")
    ap.add_argument("--domains", type=int, default=20_000)
    ap.add_argument("--deals", type=int, default=50_000)
    ap.add_argument("--tick", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--ledger-runs", type=int, default=3)
    ap.add_argument("--sqlite", action="store_true", help="SQLite too (smaller, see above)")
    ap.add_argument("--sqlite-enrollments", type=int, default=20_000)
    ap.add_argument("--schema", help="reuse this schema's history (no generation)")
    ap.add_argument("--reset", action="store_true", help="with --schema: empty the rollups")
    ap.add_argument("--keep", action="store_true", help="keep the generated schema")
    ap.add_argument(
        "--generate-only",
        action="store_true",
        help="generate a history into a kept schema and stop (reuse: --schema)",
    )
    ap.add_argument(
        "--only",
        type=lambda v: v.split(","),
        help="these reports (a,b; none: only the backfill, the tick and the endpoints)",
    )
    ap.add_argument("--domain-min-sends", type=int, default=1,
                    help="deliverability: smaller domains are one (other) row")  # fmt: skip
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-endpoints", action="store_true", help="skip the HTTP data endpoints")
    ap.add_argument("--no-fanout", action="store_true", help="skip the 200 live dashboards")
    ap.add_argument("--endpoint-runs", type=int, help="runs per data endpoint (--runs)")
    args = ap.parse_args()
    result: dict[str, Any] = {}
    url = os.environ.get(
        "TOUCHFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/tf_bench_dash"
    )
    if not args.no_postgres:
        result["postgres"] = run_pg(url, args)
        print("postgres", json.dumps(result["postgres"]), flush=True)
    if args.sqlite:
        result["sqlite"] = run_sqlite(args)
        print("sqlite", json.dumps(result["sqlite"]), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
