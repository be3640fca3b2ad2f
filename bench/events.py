"""Benchmark: signed SendGrid event batches through the API into SQLite, beside the raw floor.

Measured in the same run:

* ``events_per_s``: batches of ``--batch`` realistic events (mostly processed,
  delivered, open and click; ~1 % bounces, each ending an enrollment), every
  one matched to a real sent touch, signed with ECDSA like SendGrid signs them
  and POSTed to the app in-process (ASGI through Starlette's TestClient):
  signature check, JSON parse, touch lookup, deduplicating insert, bounces;
* ``batch_p99_ms``: the 99th percentile of one batch's request latency;
* ``floor_events_per_s``: the raw floor, JSON parse plus signature check of the
  same bodies, nothing stored.

The last line of output is one JSON object with these keys.
Run: ``.venv/bin/python bench/events.py [--batches N] [--batch N] [--touches N]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from touchflow.adapters.sendgrid.webhooks import SignatureVerifier  # noqa: E402
from touchflow.domain.cadence import load_cadence  # noqa: E402
from touchflow.entrypoints.api import create_app  # noqa: E402
from touchflow.settings import Settings  # noqa: E402
from touchflow.store.cadence_versions import RuntimeCache, save_cadence_version  # noqa: E402
from touchflow.store.db import make_engine, upgrade  # noqa: E402
from touchflow.store.schema import enrollments, events, prospects, touches  # noqa: E402

SENT_AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
CADENCE = load_cadence(ROOT / "cadences" / "enterprise-outbound.yaml", ROOT / "templates")
# Event mix of a cold-outbound send: every message is processed and (mostly)
# delivered, a quarter are opened, fewer clicked, ~1 % bounce.
MIX = (
    ("processed", 0.30),
    ("delivered", 0.33),
    ("open", 0.24),
    ("click", 0.08),
    ("deferred", 0.04),
    ("bounce", 0.01),
)


def make_db(path: Path, n: int) -> Any:
    """A migrated SQLite file with ``n`` prospects, each enrolled with one sent intro touch."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.begin() as conn:
        save_cadence_version(conn, CADENCE, SENT_AT)
        conn.execute(
            insert(prospects),
            [
                {
                    "id": i,
                    "email": f"p{i}@company{i % 997}.example",
                    "first_name": "Pat",
                    "last_name": f"Lee{i}",
                    "title": "VP Sales",
                    "company": f"Company {i % 997}",
                    "domain": f"company{i % 997}.example",
                    "country": "US",
                    "timezone": "America/New_York",
                    "fields": {},
                    "created_at": SENT_AT,
                    "updated_at": SENT_AT,
                }
                for i in range(1, n + 1)
            ],
        )
        conn.execute(
            insert(enrollments),
            [
                {
                    "id": i,
                    "prospect_id": i,
                    "cadence_id": CADENCE.id,
                    "cadence_version": CADENCE.version,
                    "state": "active",
                    "step_index": 1,
                    "attempt": 1,
                    "next_due_at": SENT_AT + timedelta(days=3),
                    "owner_email": "sdr@touchflow.example",
                    "sender_email": "sam@touchflow.example",
                    "enrolled_at": SENT_AT,
                    "updated_at": SENT_AT,
                }
                for i in range(1, n + 1)
            ],
        )
        conn.execute(
            insert(touches),
            [
                {
                    "key": f"{i}-intro-1",
                    "enrollment_id": i,
                    "step_id": "intro",
                    "channel": "email",
                    "variant": "a",
                    "status": "sent",
                    "provider_id": f"sg{i:012d}",
                    "message_id": f"<tf.{i}@touchflow.example>",
                    "subject": "Pipeline predictability",
                    "due_at": SENT_AT,
                    "executed_at": SENT_AT,
                    "claimed_at": SENT_AT,
                    "sent_at": SENT_AT,
                }
                for i in range(1, n + 1)
            ],
        )
    return engine


def make_batches(n_batches: int, size: int, n_touches: int, seed: int = 7) -> list[list[dict]]:
    """Realistic SendGrid events; bounces go to distinct prospects so each ends one enrollment."""
    rng = random.Random(seed)
    names = [name for name, _ in MIX]
    weights = [w for _, w in MIX]
    bounced: set[int] = set()
    ts = int(SENT_AT.timestamp())
    batches = []
    for _ in range(n_batches):
        batch = []
        for _ in range(size):
            name = rng.choices(names, weights)[0]
            i = rng.randint(1, n_touches)
            if name == "bounce":
                while i in bounced:
                    i = rng.randint(1, n_touches)
                bounced.add(i)
            ev: dict[str, Any] = {
                "email": f"p{i}@company{i % 997}.example",
                "timestamp": ts + rng.randint(0, 3600),
                "smtp-id": f"<tf.{i}@touchflow.example>",
                "event": name,
                "category": ["enterprise-outbound", "intro"],
                "sg_event_id": base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("="),
                "sg_message_id": f"sg{i:012d}.filterdrecv-5645d9c87f-abcde-1-0",
                "touch_key": f"{i}-intro-1",
            }
            if name in ("open", "click"):
                ev["useragent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
                ev["ip"] = f"203.0.113.{rng.randint(1, 254)}"
                ev["sg_machine_open"] = False
            if name == "click":
                ev["url"] = "https://touchflow.example/case-study?utm_source=outbound"
                ev["url_offset"] = {"index": 0, "type": "text"}
            if name == "delivered":
                ev["response"] = "250 2.0.0 OK  1733065200 x12si3456789qkb.123 - gsmtp"
                ev["tls"] = 1
            if name == "deferred":
                ev["response"] = "421 4.7.0 Try again later"
                ev["attempt"] = "1"
            if name == "bounce":
                ev["type"] = "bounce"
                ev["status"] = "5.1.1"
                ev["reason"] = "550 5.1.1 The email account that you tried to reach does not exist"
                ev["bounce_classification"] = "Invalid Address"
            batch.append(ev)
        batches.append(batch)
    return batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--touches", type=int, default=20_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="touchflow-bench-events-"))
    engine = make_db(tmp / "events.db", args.touches)

    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp / 'events.db'}",
        sendgrid={"webhook_public_key": public},
    )
    app = create_app(settings, engine=engine, runtimes=RuntimeCache(settings.public_url))

    def signed(body: bytes) -> dict[str, str]:
        ts = str(int(time.time()))
        sig = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        }

    batches = make_batches(args.batches + 1, args.batch, args.touches)
    bodies = [json.dumps(b).encode() for b in batches]
    requests = [(body, signed(body)) for body in bodies]  # signing is the provider's cost
    results: dict[str, Any] = {}
    with TestClient(app) as client:
        warm_body, warm_headers = requests[0]  # first request: imports, key parse, pool
        assert client.post("/webhooks/sendgrid/events", content=warm_body, headers=warm_headers)
        latencies = []
        stored = applied = 0
        t0 = time.perf_counter()
        for body, headers in requests[1:]:
            t = time.perf_counter()
            r = client.post("/webhooks/sendgrid/events", content=body, headers=headers)
            latencies.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
            stored += r.json()["stored"]
            applied += r.json()["applied"]
        elapsed = time.perf_counter() - t0
    n_events = args.batches * args.batch
    assert stored == n_events, (stored, n_events)
    with engine.connect() as conn:
        bounced = conn.execute(
            select(func.count()).select_from(enrollments).where(enrollments.c.state == "bounced")
        ).scalar_one()
        total = conn.execute(select(func.count()).select_from(events)).scalar_one()
    assert total == n_events + args.batch, total

    verifier = SignatureVerifier(public, max_age_s=3600)
    f0 = time.perf_counter()
    for body, headers in requests[1:]:
        now = datetime.now(UTC)
        ok = verifier.problem(
            body,
            headers["X-Twilio-Email-Event-Webhook-Signature"],
            headers["X-Twilio-Email-Event-Webhook-Timestamp"],
            now,
        )
        assert ok is None, ok
        json.loads(body)
    floor_elapsed = time.perf_counter() - f0

    lat_ms = sorted(x * 1000 for x in latencies)
    p99 = lat_ms[min(len(lat_ms) - 1, max(0, round(0.99 * len(lat_ms)) - 1))]
    results["events_per_s"] = round(n_events / elapsed)
    results["floor_events_per_s"] = round(n_events / floor_elapsed)
    results["batch_p99_ms"] = round(p99, 1)
    results["batch_median_ms"] = round(statistics.median(lat_ms), 1)
    results["within_floor_x"] = round(results["floor_events_per_s"] / results["events_per_s"], 1)
    results["bounces_applied"] = applied

    rows = [
        ("batches x events", f"{args.batches} x {args.batch}"),
        ("events/s (API, stored)", f"{results['events_per_s']:,}"),
        ("events/s (floor: parse + verify)", f"{results['floor_events_per_s']:,}"),
        ("batch latency median / p99", f"{results['batch_median_ms']} / {p99:.1f} ms"),
        ("bounces applied (timed) / bounced (+ warm-up)", f"{applied} / {bounced}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
