"""Benchmark: a tick over 20,000 due enrollments on PostgreSQL, inline and over 1-3 workers.

For each email transport (``outbox``: .eml files; ``smtp``: the local SMTP
sink, its own process), in the same run:

* ``inline``: the single-process tick (``touchflow run``: no Prefect), the
  baseline;
* ``workers=W`` for W in 1, 2, 3: a real local Prefect server (its own
  PostgreSQL database), ``prefect deploy --all`` of prefect.yaml, W process
  workers started with ``--limit 2``, and the ``run-cadences`` deployment
  triggered once: it fans out to ``TOUCHFLOW_TICK__SHARDS`` = 2 W
  ``tick-shard`` runs. Timed from the trigger to the last shard's end, so the
  Prefect overhead (the parent's and the shards' process starts) is in it;
  ``shard_span_s`` is first shard start to last shard end.

touches/s = touches sent / seconds. Caps are off (the cap lock would
serialize shards sending from one mailbox: see docs/operations.md). Every
configuration starts from a fresh schema with the same 20,000 due
enrollments, and checks that each was sent exactly once.

Needs PostgreSQL: ``TOUCHFLOW_TEST_POSTGRES_URL`` (or ``--database-url``).
Run: ``.venv/bin/python bench/scaleout.py [--enrollments N] [--workers 1,2,3]``.
The last line of output is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from tick import NOW, make_db  # noqa: E402

from tests.support.prefect_cluster import (  # noqa: E402
    PrefectCluster,
    free_port,
    fresh_database,
    state,
    worker_of,
)
from touchflow.store.schema import touches  # noqa: E402

BATCH = 500
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def fresh_schema(base: str) -> tuple[str, str]:
    """A new empty schema on ``base``'s database; (its name, a URL whose search_path is it)."""
    schema = f"scaleout_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options=-csearch_path%3D{schema}"


def drop_schema(base: str, schema: str) -> None:
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def seeded(base: str, n: int) -> tuple[str, str]:
    schema, url = fresh_schema(base)
    make_db(url, n, due=True).dispose()
    return schema, url


def sent_once(url: str, n: int) -> int:
    """Touches sent; raises unless every enrollment got exactly one, all sent."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(select(touches.c.status, func.count()).group_by(touches.c.status)).all()
        )
        per = conn.execute(
            select(func.count(func.distinct(touches.c.enrollment_id)))
        ).scalar()
    engine.dispose()
    if statuses != {"sent": n} or per != n:
        raise SystemExit(f"expected {n} touches sent once each, got {statuses}")
    return n


def touchflow_env(url: str, transport: str, tmp: Path, sink_port: int) -> dict[str, str]:
    (tmp / "config").mkdir(exist_ok=True)
    return {
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


def inline(base: str, n: int, transport: str, tmp: Path, sink_port: int) -> dict[str, Any]:
    """``touchflow run``: the whole tick in one process, no Prefect."""
    schema, url = seeded(base, n)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOUCHFLOW_")},
        **touchflow_env(url, transport, tmp, sink_port),
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "touchflow", "run", "--now", NOW.isoformat()],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    sent = sent_once(url, n)
    drop_schema(base, schema)
    return {"seconds": round(seconds, 1), "touches_per_s": round(sent / seconds)}


def fanned_out(
    cluster: PrefectCluster, base: str, n: int, workers: int, transport: str, tmp: Path,
    sink_port: int,
) -> dict[str, Any]:  # fmt: skip
    """One tick through the run-cadences deployment, with ``workers`` fresh workers."""
    schema, url = seeded(base, n)
    cluster.touchflow_env = {
        **touchflow_env(url, transport, tmp, sink_port),
        "TOUCHFLOW_TICK__SHARDS": str(2 * workers),
    }
    names = [f"{transport}-{workers}-w{i + 1}" for i in range(workers)]
    for name in names:
        cluster.start_worker(name, limit=2)
    cluster.wait_for_workers()
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

    shards = cluster.wait(shards_done, 900, "the shards", every=0.25)
    seconds = time.perf_counter() - started
    if {state(r) for r in shards} != {"COMPLETED"}:
        raise SystemExit(f"shards ended {Counter(state(r) for r in shards)}")
    sent = sent_once(url, n)
    starts = [datetime.fromisoformat(r["start_time"]) for r in shards]
    ends = [datetime.fromisoformat(r["end_time"]) for r in shards]
    span = (max(ends) - min(starts)).total_seconds()
    for name in names:
        proc = cluster.workers.pop(name)
        proc.terminate()
        proc.wait(timeout=30)
    drop_schema(base, schema)
    return {
        "seconds": round(seconds, 1),
        "touches_per_s": round(sent / seconds),
        "shards": len(shards),
        "shard_span_s": round(span, 1),
        "touches_per_s_in_shards": round(sent / span),
        "shards_per_worker": dict(Counter(worker_of(r) for r in shards)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--transports", default="outbox,smtp")
    parser.add_argument(
        "--database-url", default=os.environ.get("TOUCHFLOW_TEST_POSTGRES_URL"),
        help="a PostgreSQL database to make schemas in (default: TOUCHFLOW_TEST_POSTGRES_URL)",
    )  # fmt: skip
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("set TOUCHFLOW_TEST_POSTGRES_URL or --database-url (PostgreSQL)")
    base = args.database_url
    counts = [int(w) for w in args.workers.split(",")]
    results: dict[str, Any] = {"enrollments": args.enrollments, "batch_size": BATCH}
    sink_port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "touchflow.adapters.smtp.sink", "--port", str(sink_port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    dbname = base.split("?")[0].rsplit("/", 1)[1]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        cluster = PrefectCluster(
            tmp / "prefect", {}, fresh_database(base, f"{dbname}_scaleout_prefect")
        )
        try:
            cluster.start()
            cluster.deploy()
            for transport in args.transports.split(","):
                row: dict[str, Any] = {}
                row["inline"] = inline(base, args.enrollments, transport, tmp, sink_port)
                print(transport, "inline", row["inline"], flush=True)
                for w in counts:
                    row[f"workers={w}"] = fanned_out(
                        cluster, base, args.enrollments, w, transport, tmp, sink_port
                    )
                    print(transport, f"workers={w}", row[f"workers={w}"], flush=True)
                results[transport] = row
        finally:
            cluster.close()
            sink.terminate()
            sink.wait(timeout=10)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
