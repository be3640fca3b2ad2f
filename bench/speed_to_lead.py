"""Benchmark: POST /leads at a sustained rate, request to CRM upsert done, beside a floor.

Separate processes, real HTTP between them: ``--servers`` API processes
(``touchflow serve`` on one SQLite file with the bundled config: ICP, team,
routing, inbound cadence, offline firmographics; requests alternate between
them as behind a round-robin proxy), the HubSpot stand-in as the CRM, and this
load generator. The
generator sends ``--rate`` requests per second (default 50) for ``--seconds``
(default 60), open loop: each request goes at its scheduled time whatever the
previous ones are doing, so a slow server shows up as latency, not as a lower
rate. The API answers after the lead is stored, scored, routed, enrolled and
pushed to the CRM (``"crm": "pushed"``), so the latency is request -> CRM
upsert done.

Measured in the same run:

* ``p50_ms``, ``p99_ms``: latency of ``POST /leads``; ``requests``, ``errors``
  (non-2xx, or a lead left ``queued`` instead of ``pushed``);
* ``floor_p50_ms``, ``floor_p99_ms``: ``GET /healthz`` (HTTP + a database
  ping) at the same rate for a fifth of the time: what any request costs;
* ``cpu_ms_per_lead``: CPU per lead of the API processes, the CRM stand-in,
  the load generator and the whole box (Linux ``/proc``): every process of
  the benchmark shares the machine, so the box figure sets the rate it can
  sustain (cores x 1000 / box ms per lead).

The last line of output is one JSON object with these keys.
Run: ``.venv/bin/python bench/speed_to_lead.py [--rate 50] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from touchflow.store.db import make_engine, upgrade  # noqa: E402

API_KEY = "bench-api-key"
CRM_TOKEN = "pat-bench-token"
TITLES = ["VP Sales", "Head of Revenue Operations", "Director of Marketing", "CEO", "Sales Manager",
          "Account Executive", "Directora de Ventas", "Leiter Vertrieb"]  # fmt: skip
COUNTRIES = ["US", "US", "CA", "GB", "DE", "FR", "ES", "JP"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _lead(i: int) -> dict[str, Any]:
    company = f"bench{i % 400}"
    return {
        "email": f"lead{i}@{company}.example",
        "first_name": f"Lead{i}",
        "last_name": "Bench",
        "title": TITLES[i % len(TITLES)],
        "company": company.title(),
        "website": f"https://www.{company}.example",
        "country": COUNTRIES[i % len(COUNTRIES)],
        "utm_source": "bench",
    }


# On PostgreSQL `serve` runs as production and refuses the sample sender
# (@touchflow.example): the benchmarks' servers send as a bench address of their own.
PRODUCTION_SENDER_ENV = {
    "TOUCHFLOW_SENDER__EMAIL": "sdr@bench.example",
    "TOUCHFLOW_SENDER__OWNER_EMAIL": "sdr@bench.example",
    "TOUCHFLOW_UNSUBSCRIBE_MAILTO": "unsubscribe@bench.example",
}


def _fresh_schema(url: str) -> str:
    """A URL of ``url``'s database whose search_path is a new, empty schema."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of a process (Linux /proc), or of the whole box (None)."""
    try:
        if pid is None:
            with open("/proc/stat") as f:
                ticks = [int(t) for t in f.readline().split()[1:8]]
            return (sum(ticks) - ticks[3] - ticks[4]) / _TICK  # all but idle and iowait
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, ValueError):
        return float("nan")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _drive(n: int, rate: float, send: Any) -> list[tuple[float, bool]]:
    """Call ``send(i)`` at ``rate`` per second, open loop; (latency s, ok) per call."""
    results: list[tuple[float, bool]] = []
    lock = threading.Lock()

    def one(i: int, due: float) -> None:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        ok = send(i)
        with lock:
            results.append((time.perf_counter() - t0, ok))

    start = time.perf_counter() + 0.2
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(n):
            pool.submit(one, i, start + i / rate)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--servers", type=int, default=2, help="API processes; requests alternate between them"
    )
    ap.add_argument(
        "--database-url",
        default=os.environ.get("TOUCHFLOW_TEST_POSTGRES_URL"),
        help="PostgreSQL (a fresh schema is made in it); default $TOUCHFLOW_TEST_POSTGRES_URL, "
        "else a SQLite file (then one API process: SQLite has one writer)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="touchflow-stl-"))
    if args.database_url:
        db = _fresh_schema(args.database_url)
    else:
        db = f"sqlite:///{tmp / 'leads.db'}"
        args.servers = 1
    upgrade(make_engine(db))
    crm_port = _free_port()
    ports = [_free_port() for _ in range(args.servers)]
    crm = subprocess.Popen(
        [sys.executable, "-m", "tests.support.standins.hubspot_api", "--port", str(crm_port),
         "--token", CRM_TOKEN, "--owners", "8"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {
        **os.environ,
        "TOUCHFLOW_DATABASE_URL": db,
        "TOUCHFLOW_API_KEY": API_KEY,
        "TOUCHFLOW_CRM__PROVIDER": "hubspot",
        "TOUCHFLOW_CRM__TOKEN": CRM_TOKEN,
        "TOUCHFLOW_CRM__BASE_URL": f"http://127.0.0.1:{crm_port}",
        "TOUCHFLOW_UNSUBSCRIBE_SECRET": "speed-to-lead-secret",
        "TOUCHFLOW_AUTH__SESSION_SECRET": "speed-to-lead-session-secret",
        **PRODUCTION_SENDER_ENV,
    }
    apis = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "touchflow", "serve", "--no-access-log"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        _wait(f"http://127.0.0.1:{crm_port}/crm/v3/owners")
        for base in bases:
            _wait(f"{base}/healthz")
        # One keep-alive pool per API process; requests alternate, like a round-robin proxy.
        clients = [
            httpx.Client(base_url=base, timeout=30.0, limits=httpx.Limits(max_connections=64))
            for base in bases
        ]
        headers = {"X-API-Key": API_KEY}

        def post(i: int) -> bool:
            client = clients[i % len(clients)]
            try:
                r = client.post(
                    "/leads", json=_lead(i), headers={**headers, "Idempotency-Key": f"bench-{i}"}
                )
            except httpx.HTTPError:
                return False
            return r.status_code in (200, 201) and r.json().get("crm") == "pushed"

        def health(i: int) -> bool:
            try:
                return clients[i % len(clients)].get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        for i in range(20):  # warm up: connections, caches, first writes
            post(1_000_000 + i)
        floor = _drive(max(1, int(args.rate * args.seconds / 5)), args.rate, health)
        pids = {"api": [p.pid for p in apis], "crm_standin": [crm.pid], "load": [os.getpid()]}
        cpu0 = {k: sum(_cpu_s(pid) for pid in v) for k, v in pids.items()} | {"box": _cpu_s()}
        t0 = time.perf_counter()
        results = _drive(int(args.rate * args.seconds), args.rate, post)
        wall = time.perf_counter() - t0
        cpu1 = {k: sum(_cpu_s(pid) for pid in v) for k, v in pids.items()} | {"box": _cpu_s()}
    finally:
        for proc in (*apis, crm):
            proc.terminate()
        for proc in (*apis, crm):
            proc.wait(10)
    lat = [r[0] * 1000 for r in results]
    floor_lat = [r[0] * 1000 for r in floor]
    out = {
        "p50_ms": round(_percentile(lat, 0.50), 1),
        "p99_ms": round(_percentile(lat, 0.99), 1),
        "requests": len(results),
        "errors": sum(1 for r in results if not r[1]),
        "achieved_rate": round(len(results) / wall, 1),
        "floor_p50_ms": round(_percentile(floor_lat, 0.50), 1),
        "floor_p99_ms": round(_percentile(floor_lat, 0.99), 1),
        # CPU per lead (ms): the API processes, the stand-in, this generator, and the whole
        # box (PostgreSQL and the rest included). Capacity is about cores * 1000 / box ms.
        "cpu_ms_per_lead": {k: round((cpu1[k] - cpu0[k]) * 1000 / len(results), 1) for k in cpu0},
        "database": db.split("://")[0].split("+")[0],
        "servers": args.servers,
    }
    print(f"database: {db.split('://')[0]}, {args.servers} API process(es)")
    print(f"POST /leads at {args.rate}/s for {args.seconds:.0f} s: p50 {out['p50_ms']} ms, "
          f"p99 {out['p99_ms']} ms, {out['errors']} errors of {out['requests']}")  # fmt: skip
    print(f"CPU per lead (ms): {out['cpu_ms_per_lead']} on {os.cpu_count()} cores")
    print(f"floor (GET /healthz, same rate): p50 {out['floor_p50_ms']} ms, "
          f"p99 {out['floor_p99_ms']} ms")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
