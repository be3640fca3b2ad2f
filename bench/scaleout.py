"""Benchmark: a tick over 50,000 due enrollments on PostgreSQL, over 1-3 Prefect workers.

For each email transport (``sendgrid``: the real SendGrid sender over HTTP to
the SendGrid stand-in, which validates every request against SendGrid's spec
and answers after ``--latency-ms``, default 50; ``smtp``: the local SMTP sink;
``outbox``: .eml files), in the same run:

* ``inline`` (unless ``--no-inline``): the single-process tick
  (``touchflow run``: no Prefect), the baseline;
* ``workers=W`` for W in ``--workers`` (1, 2, 3): a real local Prefect server
  (its own PostgreSQL database), ``prefect deploy --all`` of prefect.yaml, W
  process workers started with ``--limit 2``, and the ``run-cadences``
  deployment triggered once: it fans out to ``TOUCHFLOW_TICK__SHARDS`` =
  ``--shards-per-worker`` x W ``tick-shard`` runs. Timed from the trigger to
  the last shard's end, so the Prefect overhead (the parent's and the shards'
  process starts) is in it; ``shard_span_s`` is first shard start to last
  shard end.

The SMTP sink and the SendGrid stand-in each run as a process of their own
(the stand-in is restarted for every configuration and must report exactly
the touches sent), so they do not share the workers' processes; on one
machine they still share its cores.

Per configuration, beside touches/s:

* ``cpu_ms_per_touch``: CPU (user + system) per touch sent, per kind of
  process: ``flow_runs`` (every flow-run process the workers started: the
  parent and its shards, read exactly from each worker's reaped-children
  times), ``workers`` (the worker processes themselves), ``prefect_server``
  (the server's process tree), ``postgres_touchflow`` / ``postgres_prefect``
  (the PostgreSQL backends serving touchflow's and Prefect's databases,
  sampled every 0.5 s from ``pg_stat_activity``: a lower bound), ``standin``;
  ``per_flow_run_process`` divides ``flow_runs`` by the number of shards;
* ``db_per_touch``: from ``pg_stat_database`` of touchflow's database around
  the tick: transactions, rows inserted, updated, deleted and fetched per
  touch; ``rows_by_table`` the same per table (``pg_stat_user_tables``);
* ``bytes``: ``pg_total_relation_size`` of every table of the schema after
  the tick (tables, indexes, TOAST), with its row count;
* ``efficiency``: touches/s against 1 worker, divided by the worker count;
* ``loadavg``: the machine's 1-minute load average sampled during the tick
  (min, mean, max): other jobs' load shows here.

touches/s = touches sent / seconds. Caps are off (the cap lock would
serialize shards sending from one mailbox: see docs/operations.md). Every
configuration starts from a fresh schema with the same due enrollments, and
checks that each was sent exactly once.

Needs PostgreSQL: ``TOUCHFLOW_TEST_POSTGRES_URL`` (or ``--database-url``).
Run: ``.venv/bin/python bench/scaleout.py [--enrollments N] [--workers 1,2,3]``
``[--transports sendgrid,smtp] [--latency-ms 50] [--no-inline]``.
The last line of output is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psutil  # noqa: E402
from sqlalchemy import Engine, create_engine, func, select, text  # noqa: E402
from tick import NOW, make_db  # noqa: E402

from tests.support.prefect_cluster import (  # noqa: E402
    PrefectCluster,
    free_port,
    fresh_database,
    state,
    worker_of,
)
from tests.support.standins.sendgrid_api import DEFAULT_API_KEY  # noqa: E402
from touchflow.store.schema import touches  # noqa: E402

BATCH = 500
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PG_STATS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
            "tup_fetched")  # fmt: skip
TABLE_STATS = ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del")


def engine_for(url: str, **kw: Any) -> Engine:
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), **kw)


def other_db(base: str, name: str) -> str:
    """``base`` with its database replaced by ``name`` (no search_path option)."""
    head, _, _ = base.split("?")[0].rpartition("/")
    return f"{head}/{name}"


def fresh_schema(base: str) -> tuple[str, str]:
    """A new empty schema on ``base``'s database; (its name, a URL whose search_path is it)."""
    schema = f"scaleout_{uuid.uuid4().hex[:8]}"
    admin = engine_for(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options=-csearch_path%3D{schema}"


def drop_schema(base: str, schema: str) -> None:
    admin = engine_for(base)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def seeded(base: str, n: int) -> tuple[str, str]:
    schema, url = fresh_schema(base)
    make_db(url, n, due=True).dispose()
    return schema, url


def sent_once(url: str, n: int) -> int:
    """Touches sent; raises unless every enrollment got exactly one, all sent."""
    engine = engine_for(url)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(select(touches.c.status, func.count()).group_by(touches.c.status)).all()
        )
        per = conn.execute(select(func.count(func.distinct(touches.c.enrollment_id)))).scalar()
    engine.dispose()
    if statuses != {"sent": n} or per != n:
        raise SystemExit(f"expected {n} touches sent once each, got {statuses}")
    return n


# ---------------------------------------------------------------------- measuring


def cpu_s(times: Any) -> float:
    return float(times.user + times.system)


def tree_cpu(pid: int) -> float:
    """CPU of a process, its live descendants and the children it has reaped."""
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        total = cpu_s(times) + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            try:
                total += cpu_s(child.cpu_times())
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        return 0.0


class Sampler(threading.Thread):
    """Every 0.5 s: the load average and the CPU of PostgreSQL backends per database.

    A backend's CPU is its last sample (minus what it had used when first seen,
    for one that existed before the tick): what it used after its last sample,
    before it exited, is missed, so the sums are lower bounds.
    """

    def __init__(self, admin_url: str, databases: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.engine = engine_for(admin_url, pool_size=1)
        self.databases = databases  # database name -> label
        self.stop = threading.Event()
        self.loads: list[float] = []
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], tuple[str, float]] = {}
        self._sample(first=True)

    def _sample(self, first: bool = False) -> None:
        self.loads.append(os.getloadavg()[0])
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid, datname FROM pg_stat_activity "
                    "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"
                ),
                {"names": list(self.databases)},
            ).all()
        for pid, datname in rows:
            try:
                proc = psutil.Process(pid)
                key = (pid, proc.create_time())
                used = cpu_s(proc.cpu_times())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if key not in self.first:
                self.first[key] = used if first else 0.0
            self.last[key] = (self.databases[datname], used)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        self.join()
        self._sample()
        self.engine.dispose()
        per: Counter[str] = Counter()
        for key, (label, used) in self.last.items():
            per[label] += used - self.first[key]
        return {
            "cpu_s": dict(per),
            "loadavg": {
                "min": round(min(self.loads), 1),
                "mean": round(statistics.fmean(self.loads), 1),
                "max": round(max(self.loads), 1),
            },
        }


def db_stats(admin: Engine, dbname: str) -> dict[str, int]:
    """touchflow's database counters, read from another database (not counted in them)."""
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(
            text(f"SELECT {', '.join(PG_STATS)} FROM pg_stat_database WHERE datname = :d"),
            {"d": dbname},
        ).one()
    return dict(zip(PG_STATS, (int(v) for v in row), strict=True))


def table_stats(url: str, schema: str) -> dict[str, dict[str, int]]:
    engine = engine_for(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT relname, {', '.join(TABLE_STATS)} FROM pg_stat_user_tables "
                "WHERE schemaname = :s"
            ),
            {"s": schema},
        ).all()
    engine.dispose()
    return {r[0]: dict(zip(TABLE_STATS, (int(v) for v in r[1:]), strict=True)) for r in rows}


def table_bytes(url: str, schema: str) -> dict[str, dict[str, int]]:
    """Every non-empty table of the schema: rows and bytes (with indexes and TOAST)."""
    engine = engine_for(url)
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
        ).scalars()
        for name in list(names):
            rows = conn.execute(text(f'SELECT count(*) FROM "{schema}"."{name}"')).scalar()
            if rows:
                size = conn.execute(
                    text("SELECT pg_total_relation_size(:t)"), {"t": f'"{schema}"."{name}"'}
                ).scalar()
                out[name] = {"rows": int(rows), "bytes": int(size)}
    engine.dispose()
    return out


def event_bytes(base: str, n: int) -> dict[str, Any]:
    """Bytes per stored provider event: ``n`` SendGrid webhook events (processed, delivered, open).

    Stored as the webhook ingestion stores them (one ``events`` row each, the
    raw event as ``payload``) in a fresh migrated schema; the tick writes no
    events, so its schema cannot tell this.
    """
    from touchflow.store.db import make_engine, upgrade
    from touchflow.store.schema import events

    def event(i: int) -> dict[str, Any]:
        """A SendGrid Event Webhook item as it arrives (bench/events.py's shapes)."""
        name = ("processed", "delivered", "open")[i % 3]
        ev: dict[str, Any] = {
            "email": f"p{i}@company{i % 997}.example",
            "timestamp": int(NOW.timestamp()) + i % 3600,
            "smtp-id": f"<tf.{i}@touchflow.example>",
            "event": name,
            "category": ["enterprise-outbound", "intro"],
            "sg_event_id": uuid.uuid4().hex[:22],
            "sg_message_id": f"sg{i:012d}.filterdrecv-5645d9c87f-abcde-1-0",
            "touch_key": f"{i // 3}-intro-1",
        }
        if name == "open":
            ev["useragent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
            ev["ip"] = f"203.0.113.{i % 254 + 1}"
            ev["sg_machine_open"] = False
        if name == "delivered":
            ev["response"] = "250 2.0.0 OK  1733065200 x12si3456789qkb.123 - gsmtp"
            ev["tls"] = 1
        return ev

    schema, url = fresh_schema(base)
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        for start in range(0, n, 1000):
            batch = [event(i) for i in range(start, min(n, start + 1000))]
            conn.execute(
                events.insert(),
                [
                    {
                        "provider_event_id": f"sendgrid:{ev['sg_event_id']}",
                        "touch_key": ev["touch_key"],
                        "type": ev["event"],
                        "occurred_at": NOW,
                        "source": "sendgrid",
                        "payload": ev,
                        "created_at": NOW,
                    }
                    for ev in batch
                ],
            )
    engine.dispose()
    got = table_bytes(url, schema)["events"]
    drop_schema(base, schema)
    return {**got, "bytes_per_event": round(got["bytes"] / got["rows"])}


def settle_stats() -> None:
    """Backends flush their statistics when idle for 1 s or when they exit."""
    time.sleep(2.0)


# ---------------------------------------------------------------------- transports


class Standin:
    """The SendGrid stand-in as a process of its own, started per configuration."""

    def __init__(self, latency_ms: float) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.standins.sendgrid_api",
             "--port", str(self.port), "--latency-ms", str(latency_ms)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "stand-in on" not in line:
            raise SystemExit(f"the SendGrid stand-in did not start: {line}")
        self.cpu0 = cpu_s(psutil.Process(self.proc.pid).cpu_times())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> tuple[int, float]:
        """(messages it accepted, its CPU seconds)."""
        used = cpu_s(psutil.Process(self.proc.pid).cpu_times()) - self.cpu0
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=60)
        accepted = [ln for ln in out.splitlines() if ln.startswith("accepted ")]
        if not accepted:
            raise SystemExit(f"the SendGrid stand-in said nothing on exit: {out[-500:]}")
        return int(accepted[0].split()[1]), used


def touchflow_env(
    url: str, transport: str, tmp: Path, sink_port: int, sendgrid_url: str | None = None,
    sendgrid_concurrency: int | None = None,
) -> dict[str, str]:  # fmt: skip
    (tmp / "config").mkdir(exist_ok=True)
    env = {
        "TOUCHFLOW_DATABASE_URL": url,
        "TOUCHFLOW_CONFIG_DIR": str(tmp / "config"),  # no team.yaml: the enrollments' sender
        "TOUCHFLOW_EMAIL_TRANSPORT": transport,
        "TOUCHFLOW_OUTBOX_DIR": str(tmp / f"outbox-{uuid.uuid4().hex[:6]}"),
        "TOUCHFLOW_SMTP__HOST": "127.0.0.1",
        "TOUCHFLOW_SMTP__PORT": str(sink_port),
        "TOUCHFLOW_UNSUBSCRIBE_SECRET": "scaleout-bench-secret",
        "TOUCHFLOW_SENDER__EMAIL": "sdr@bench.example",
        "TOUCHFLOW_SENDER__OWNER_EMAIL": "sdr@bench.example",
        "TOUCHFLOW_UNSUBSCRIBE_MAILTO": "unsubscribe@bench.example",
        "TOUCHFLOW_COMPLIANCE": (
            '{"mailbox": {"hourly": null, "daily": null}, "recipient_domain_daily": null}'
        ),
        "TOUCHFLOW_BATCH_SIZE": str(BATCH),
    }
    if transport == "sendgrid":
        env["TOUCHFLOW_SENDGRID__API_KEY"] = DEFAULT_API_KEY
        env["TOUCHFLOW_SENDGRID__HOST"] = sendgrid_url or ""
        if sendgrid_concurrency is not None:
            env["TOUCHFLOW_SENDGRID__CONCURRENCY"] = str(sendgrid_concurrency)
    return env


def inline(base: str, n: int, transport: str, tmp: Path, sink_port: int,
           opts: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """``touchflow run``: the whole tick in one process, no Prefect."""
    schema, url = seeded(base, n)
    standin = Standin(opts.latency_ms) if transport == "sendgrid" else None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOUCHFLOW_")},
        **touchflow_env(url, transport, tmp, sink_port, standin.url if standin else None,
                        opts.sendgrid_concurrency),
    }  # fmt: skip
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "touchflow", "run", "--now", NOW.isoformat()],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    sent = sent_once(url, n)
    if standin is not None and standin.stop()[0] != sent:
        raise SystemExit("the stand-in did not accept exactly the touches sent")
    drop_schema(base, schema)
    return {"seconds": round(seconds, 1), "touches_per_s": round(sent / seconds)}


def fanned_out(
    cluster: PrefectCluster, base: str, n: int, workers: int, transport: str, tmp: Path,
    sink_port: int, opts: argparse.Namespace, prefect_db: str,
) -> dict[str, Any]:  # fmt: skip
    """One tick through the run-cadences deployment, with ``workers`` fresh workers."""
    schema, url = seeded(base, n)
    dbname = base.split("?")[0].rsplit("/", 1)[1]
    standin = Standin(opts.latency_ms) if transport == "sendgrid" else None
    shards_setting = opts.shards_per_worker * workers
    cluster.touchflow_env = {
        **touchflow_env(url, transport, tmp, sink_port, standin.url if standin else None,
                        opts.sendgrid_concurrency),
        "TOUCHFLOW_TICK__SHARDS": str(shards_setting),
    }  # fmt: skip
    names = [f"{transport}-{workers}-w{i + 1}-{uuid.uuid4().hex[:4]}" for i in range(workers)]
    for name in names:
        cluster.start_worker(name, limit=opts.limit)
    cluster.wait_for_workers()
    admin = engine_for(other_db(base, "postgres"), pool_size=1)
    tables0 = table_stats(url, schema)
    settle_stats()
    stats0 = db_stats(admin, dbname)
    assert cluster.server is not None
    server0 = tree_cpu(cluster.server.pid)
    workers0 = {name: psutil.Process(cluster.workers[name].pid).cpu_times() for name in names}
    sampler = Sampler(
        other_db(base, "postgres"),
        {dbname: "postgres_touchflow", prefect_db: "postgres_prefect"},
    )
    sampler.start()
    started = time.perf_counter()
    parent_id = cluster.run_deployment("run_cadences/run-cadences", {"now": NOW.isoformat()})
    cluster.wait(lambda: state(cluster.flow_run(parent_id)) in FINAL, 300, "the parent")
    if state(cluster.flow_run(parent_id)) != "COMPLETED":
        raise SystemExit(f"run-cadences ended {cluster.flow_run(parent_id)['state']}")

    def shards_done() -> list[dict[str, Any]] | None:
        runs = [
            r
            for r in cluster.flow_runs("tick_shard")
            if (r.get("idempotency_key") or "").startswith(f"{parent_id}:shard:")
        ]
        return runs if runs and all(state(r) in FINAL for r in runs) else None

    shards = cluster.wait(shards_done, 1800, "the shards", every=0.25)
    seconds = time.perf_counter() - started
    # The flow-run processes end after their runs are final: wait for them to be reaped.
    cluster.wait(
        lambda: not any(cluster.worker_children(name) for name in names),
        60, "the flow-run processes to exit",
    )  # fmt: skip
    sampled = sampler.finish()
    server_cpu = tree_cpu(cluster.server.pid) - server0
    flow_cpu: dict[str, float] = {}
    worker_cpu: dict[str, float] = {}
    for name in names:
        now_t = psutil.Process(cluster.workers[name].pid).cpu_times()
        was = workers0[name]
        flow_cpu[name] = (now_t.children_user + now_t.children_system) - (
            was.children_user + was.children_system
        )
        worker_cpu[name] = cpu_s(now_t) - cpu_s(was)
    if {state(r) for r in shards} != {"COMPLETED"}:
        raise SystemExit(f"shards ended {Counter(state(r) for r in shards)}")
    sent = sent_once(url, n)
    standin_cpu = None
    if standin is not None:
        accepted, standin_cpu = standin.stop()
        if accepted != sent:
            raise SystemExit(f"the stand-in accepted {accepted} messages, {sent} touches sent")
    settle_stats()
    stats1 = db_stats(admin, dbname)
    admin.dispose()
    tables1 = table_stats(url, schema)
    sizes = table_bytes(url, schema)
    starts = [datetime.fromisoformat(r["start_time"]) for r in shards]
    ends = [datetime.fromisoformat(r["end_time"]) for r in shards]
    span = (max(ends) - min(starts)).total_seconds()
    for name in names:
        proc = cluster.workers.pop(name)
        proc.terminate()
        proc.wait(timeout=30)
    drop_schema(base, schema)

    def ms(cpu: float) -> float:
        return round(1000 * cpu / sent, 3)

    cpu = {
        "flow_runs": ms(sum(flow_cpu.values())),
        "workers": ms(sum(worker_cpu.values())),
        "prefect_server": ms(server_cpu),
        **{k: ms(v) for k, v in sampled["cpu_s"].items()},
    }
    if standin_cpu is not None:
        cpu["standin"] = ms(standin_cpu)
    rows_by_table = {}
    for table, after in tables1.items():
        before = tables0.get(table, dict.fromkeys(TABLE_STATS, 0))
        delta = {k: round((after[k] - before[k]) / sent, 3) for k in TABLE_STATS}
        if any(delta.values()):
            rows_by_table[table] = delta
    return {
        "seconds": round(seconds, 1),
        "touches_per_s": round(sent / seconds),
        "shards": len(shards),
        "shard_span_s": round(span, 1),
        "touches_per_s_in_shards": round(sent / span),
        "shards_per_worker": dict(Counter(worker_of(r) for r in shards)),
        "cpu_ms_per_touch": cpu,
        "cpu_ms_per_touch_per_flow_run_process": ms(sum(flow_cpu.values()) / (len(shards) + 1)),
        "cpu_ms_per_touch_by_worker_flow_runs": {k: ms(v) for k, v in flow_cpu.items()},
        "db_per_touch": {k: round((stats1[k] - stats0[k]) / sent, 3) for k in PG_STATS},
        "rows_by_table_per_touch": rows_by_table,
        "bytes": sizes,
        "loadavg": sampled["loadavg"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--transports", default="sendgrid,smtp",
                        help="any of sendgrid, smtp, outbox")  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="the SendGrid stand-in's answer delay")  # fmt: skip
    parser.add_argument("--sendgrid-concurrency", type=int, default=None,
                        help="TOUCHFLOW_SENDGRID__CONCURRENCY (default: the setting)")  # fmt: skip
    parser.add_argument("--shards-per-worker", type=int, default=2)
    parser.add_argument("--limit", type=int, default=2, help="each worker's --limit")
    parser.add_argument("--no-inline", dest="inline", action="store_false",
                        help="skip the inline (touchflow run) baseline")  # fmt: skip
    parser.add_argument(
        "--event-rows", type=int, default=20_000, help="events stored to measure bytes/event"
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("TOUCHFLOW_TEST_POSTGRES_URL"),
        help="a PostgreSQL database to make schemas in (default: TOUCHFLOW_TEST_POSTGRES_URL)",
    )  # fmt: skip
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("set TOUCHFLOW_TEST_POSTGRES_URL or --database-url (PostgreSQL)")
    if args.enrollments <= BATCH:
        # The parent ticks a batch or less inline and starts no shard: nothing to measure.
        raise SystemExit(f"--enrollments must be over the batch size ({BATCH}) to start shards")
    base = args.database_url
    counts = [int(w) for w in args.workers.split(",")]
    results: dict[str, Any] = {
        "enrollments": args.enrollments,
        "batch_size": BATCH,
        "latency_ms": args.latency_ms,
        "shards_per_worker": args.shards_per_worker,
        "limit": args.limit,
        "cores": os.cpu_count(),
    }
    sink_port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "touchflow.adapters.smtp.sink", "--port", str(sink_port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    dbname = base.split("?")[0].rsplit("/", 1)[1]
    prefect_db = f"{dbname}_scaleout_prefect"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        cluster = PrefectCluster(tmp / "prefect", {}, fresh_database(base, prefect_db))
        try:
            cluster.start()
            cluster.deploy()
            for transport in args.transports.split(","):
                row: dict[str, Any] = {}
                if args.inline:
                    row["inline"] = inline(base, args.enrollments, transport, tmp, sink_port, args)
                    print(transport, "inline", row["inline"], flush=True)
                for w in counts:
                    got = fanned_out(
                        cluster, base, args.enrollments, w, transport, tmp, sink_port, args,
                        prefect_db,
                    )  # fmt: skip
                    one = row.get("workers=1")
                    if one is not None:
                        got["efficiency"] = {
                            k: round(got[k] / one[k] / w, 2)
                            for k in ("touches_per_s", "touches_per_s_in_shards")
                        }
                    row[f"workers={w}"] = got
                    print(transport, f"workers={w}", json.dumps(got), flush=True)
                results[transport] = row
            if args.event_rows:
                results["events"] = event_bytes(base, args.event_rows)
                print("events", results["events"], flush=True)
        finally:
            cluster.close()
            sink.terminate()
            sink.wait(timeout=10)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
