"""Benchmark: every report from the rollups beside the same report by GROUP BY over the ledger.

Builds a synthetic history (``--touches`` touches, default 100,000, over 40
days, 4 cadences with A/B variants, 12 owners and mailboxes; an event stream
of deliveries, opens, clicks, replies, bounces, spam reports, opt-outs and
meetings; call tasks and their completions; SQL scorings), folds it into the
rollups, then measures in the same run:

* ``<report>``: p50/p95 (ms) of ``run_report`` from the rollups (no refresh)
  and ``<report>_ledger``: the same report computed by straightforward GROUP BYs
  over the ledger, events and tasks (``ReportContext(source="ledger")``), and
  the speed-up;
* ``backfill_s``: the first refresh over the whole history;
* ``refresh_after_tick_s``: the refresh after one more tick of ``--tick``
  (10,000) touches and their events, and ``refresh_idle_s`` with nothing new.

SQLite by default; PostgreSQL too when ``TOUCHFLOW_BENCH_POSTGRES_URL`` is set
(into a fresh schema it drops afterwards). The last line is one JSON object.
Run: ``.venv/bin/python bench/reports.py [--touches N] [--tick N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, insert, text  # noqa: E402

from touchflow.domain.compliance import CapPolicy  # noqa: E402
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
    enrollments,
    events,
    prospects,
    route_assignments,
    score_history,
    tasks,
    touches,
)

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
DAYS = 40
CADENCES = ["enterprise-outbound", "mid-market", "inbound-fast-follow", "renewal"]
OWNERS = [f"rep{i}@yourco.example" for i in range(12)]
AES = [f"ae{i}@yourco.example" for i in range(6)]
STEPS = [
    ("intro", "email", True),
    ("call-1", "call", False),
    ("bump", "email", True),
    ("sms-nudge", "sms", False),
    ("breakup", "email", False),
]
NOW = T0 + timedelta(days=DAYS + 1)


class Builder:
    def __init__(self, engine: Engine, seed: int = 1) -> None:
        self.engine, self.rng = engine, random.Random(seed)
        self.next_prospect = self.next_enrollment = self.next_touch = 1

    def history(self, n_touches: int, start: datetime, days: float) -> None:
        """Enrollments of ~4 touches each, until ``n_touches`` touches."""
        rng = self.rng
        made = 0
        while made < n_touches:
            chunk = min(20_000, n_touches - made)
            p_rows, e_rows, t_rows, ev_rows, k_rows, s_rows, r_rows = [], [], [], [], [], [], []
            while len(t_rows) < chunk:
                pid, eid = self.next_prospect, self.next_enrollment
                self.next_prospect += 1
                self.next_enrollment += 1
                at = start + timedelta(seconds=rng.uniform(0, days * 86400))
                cad = rng.choice(CADENCES)
                owner = rng.choice(OWNERS)
                p_rows.append(
                    {
                        "id": pid,
                        "email": f"u{pid}@d{rng.randint(0, 400)}.example",
                        "fields": {},
                        "created_at": at,
                        "updated_at": at,
                    }
                )
                e_rows.append(
                    {
                        "id": eid,
                        "prospect_id": pid,
                        "cadence_id": cad,
                        "cadence_version": f"v-{cad}",
                        "state": "active",
                        "step_index": 0,
                        "attempt": 1,
                        "owner_email": owner,
                        "sender_email": owner,
                        "enrolled_at": at,
                        "updated_at": at,
                    }
                )
                if rng.random() < 0.1:
                    r_rows.append(
                        {
                            "prospect_id": pid,
                            "assignee_email": rng.choice(AES),
                            "rule": "rr",
                            "reason": "bench",
                            "status": "assigned",
                            "assigned_at": at,
                            "sla_due_at": at + timedelta(hours=1),
                        }
                    )
                if rng.random() < 0.05:
                    s_rows.append(
                        {
                            "prospect_id": pid,
                            "score": 80,
                            "fit": 1,
                            "engagement": 1,
                            "grade": "A",
                            "lifecycle": "sql",
                            "reasons": [],
                            "icp_version": "b",
                            "scored_at": at + timedelta(days=3),
                        }
                    )
                t = at
                for step, channel, ab in STEPS[: rng.randint(2, 5)]:
                    t += timedelta(days=rng.uniform(1, 3))
                    tid = self.next_touch
                    self.next_touch += 1
                    key = f"{eid}-{step}-1"
                    t_rows.append(
                        {
                            "id": tid,
                            "key": key,
                            "enrollment_id": eid,
                            "step_id": step,
                            "channel": channel,
                            "variant": rng.choice("ab") if ab else None,
                            "status": "sent" if rng.random() < 0.97 else "failed",
                            "due_at": t,
                            "executed_at": t,
                            "claimed_at": t,
                        }
                    )
                    if channel == "call":
                        k_rows.append(
                            {
                                "touch_key": key,
                                "enrollment_id": eid,
                                "step_id": step,
                                "channel": channel,
                                "owner_email": owner,
                                "title": "Call",
                                "status": "done",
                                "due_at": t,
                                "created_at": t,
                                "completed_at": t + timedelta(hours=2),
                            }
                        )
                        ev_rows.append(
                            self._event(
                                pid,
                                eid,
                                key,
                                "completed",
                                "task",
                                t + timedelta(hours=2),
                                {"outcome": rng.choice(["voicemail", "no_answer", "connected"])},
                            )
                        )
                        continue
                    for kind, p in (
                        ("delivered", 0.95),
                        ("opened", 0.45),
                        ("clicked", 0.05),
                        ("replied", 0.04),
                        ("bounce", 0.01),
                        ("spamreport", 0.001),
                        ("unsubscribe", 0.005),
                        ("meeting_booked", 0.01),
                    ):
                        if rng.random() < p:
                            when = t + timedelta(hours=rng.uniform(0.1, 72))
                            ev_rows.append(self._event(pid, eid, key, kind, "sendgrid", when, {}))
            with self.engine.begin() as conn:
                batches = (
                    (prospects, p_rows),
                    (enrollments, e_rows),
                    (touches, t_rows),
                    (events, ev_rows),
                    (tasks, k_rows),
                    (score_history, s_rows),
                    (route_assignments, r_rows),
                )
                for table, rows in batches:
                    if rows:
                        conn.execute(insert(table), rows)
            made += len(t_rows)

    def _event(
        self,
        pid: int,
        eid: int,
        key: str,
        kind: str,
        source: str,
        at: datetime,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "prospect_id": pid,
            "enrollment_id": eid,
            "touch_key": key,
            "type": kind,
            "source": source,
            "occurred_at": at,
            "payload": payload,
            "provider_event_id": uuid.uuid4().hex,
            "created_at": at,
        }


def _ms(samples: list[float]) -> tuple[float, float]:
    xs = sorted(samples)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return round(statistics.median(xs) * 1000, 2), round(p95 * 1000, 2)


def run(url: str, n_touches: int, tick: int, runs: int) -> dict[str, Any]:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(cadence_versions),
            [
                {
                    "version": f"v-{c}",
                    "cadence_id": c,
                    "yaml_text": "",
                    "source_path": "",
                    "templates": {},
                    "created_at": T0,
                }
                for c in CADENCES
            ],
        )
    b = Builder(engine)
    started = time.perf_counter()
    b.history(n_touches, T0, DAYS)
    out: dict[str, Any] = {"touches": n_touches, "load_s": round(time.perf_counter() - started, 1)}
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    out["backfill_s"] = round(rollups.refresh(engine).seconds, 2)
    caps = CapPolicy()
    q = ReportQuery()
    for name in REPORTS:
        fast_ctx = ReportContext(now=NOW, caps=caps)
        slow_ctx = ReportContext(now=NOW, caps=caps, source="ledger")
        fast, slow = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            a = run_report(engine, name, q, fast_ctx, fresh=False)
            fast.append(time.perf_counter() - t0)
        for _ in range(max(3, runs // 4)):
            t0 = time.perf_counter()
            s = run_report(engine, name, q, slow_ctx, fresh=False)
            slow.append(time.perf_counter() - t0)
        assert a.rows == s.rows, f"{name}: rollups and ledger disagree"
        f50, f95 = _ms(fast)
        s50, s95 = _ms(slow)
        out[name] = {
            "p50_ms": f50,
            "p95_ms": f95,
            "ledger_p50_ms": s50,
            "ledger_p95_ms": s95,
            "speedup_p50": round(s50 / f50, 1) if f50 else None,
        }
    # One tick's worth: `tick` touches and their events (a day after the history).
    b.history(tick, T0 + timedelta(days=DAYS), 0.01)
    out["refresh_after_tick_s"] = round(rollups.refresh(engine).seconds, 3)
    out["refresh_idle_s"] = round(rollups.refresh(engine).seconds, 4)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--touches", type=int, default=100_000)
    ap.add_argument("--tick", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = run(f"sqlite:///{tmp}/bench.db", args.touches, args.tick, args.runs)
        print("sqlite", json.dumps(result["sqlite"]), flush=True)
    pg = os.environ.get("TOUCHFLOW_BENCH_POSTGRES_URL")
    if pg:
        from sqlalchemy import create_engine

        admin = create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in pg else "?"
        try:
            result["postgres"] = run(
                f"{pg}{sep}options=-csearch_path%3D{schema}", args.touches, args.tick, args.runs
            )
            print("postgres", json.dumps(result["postgres"]), flush=True)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
