"""Soak test: a realistic mix of API traffic for a long time against ``serve`` processes.

Separate processes, real HTTP: ``--servers`` API processes (``touchflow
serve`` over one database; requests alternate between them as behind a
round-robin proxy) and this load generator, which sends ``--rate`` requests a
second (open loop) for ``--seconds``, drawn from this mix:

=====================  ======  ==================================================
route                  share   what
=====================  ======  ==================================================
SendGrid events        25 %    a signed batch of 1-50 events (delivered, open,
                               click, bounce, a malformed one now and then)
POST /leads            20 %    a lead with an Idempotency-Key; one in ten repeats
                               an earlier key with its body (a client retry)
GET /unsubscribe       20 %    a link click: a validly signed token (its touch
                               is not in this store: the 404 page) or a forged one
POST /unsubscribe      5 %     the one-click POST of such a link
Twilio inbound SMS     15 %    signed; STOP, START, HELP or a reply
Twilio message status  15 %    signed delivery callbacks
=====================  ======  ==================================================

(Transcription callbacks join the mix once the API has them.)

It reports requests, errors by status (a 5xx or a connection error is an
error; the 4xx the mix provokes on purpose are counted apart), p50 and p99
per route, and each server's RSS after the warm-up, every tenth of the run
and at the end. The last line of output is one JSON object.

Run: ``.venv/bin/python bench/soak.py --seconds 600 --database-url postgresql://...``
(two servers on PostgreSQL, a fresh schema in it). Without
``--database-url`` it runs one server on a SQLite file (SQLite has one writer).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from speed_to_lead import (  # noqa: E402
    PRODUCTION_SENDER_ENV,
    _free_port,
    _fresh_schema,
    _lead,
    _percentile,
    _wait,
)

from touchflow.domain.unsubscribe import sign as sign_token  # noqa: E402
from touchflow.store.db import make_engine, upgrade  # noqa: E402

API_KEY = "soak-api-key"
PUBLIC_URL = "https://hooks.soak.example"
TWILIO_TOKEN = "soak-twilio-token"
UNSUB_SECRET = "soak-unsubscribe-secret"
MIX = [("events", 25), ("lead", 20), ("unsub_get", 20), ("unsub_post", 5), ("sms", 15),
       ("status", 15)]  # fmt: skip
#: Statuses the mix asks for on purpose (forged links, malformed batches): not errors.
EXPECTED = {"unsub_get": {404}, "unsub_post": {404}, "events": {400}}


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


class Mix:
    """Builds and sends one request of each kind; thread-safe."""

    def __init__(self, bases: list[str], key: ec.EllipticCurvePrivateKey) -> None:
        self.clients = [
            httpx.Client(base_url=b, timeout=30.0, limits=httpx.Limits(max_connections=64))
            for b in bases
        ]
        self.key = key
        self.twilio = RequestValidator(TWILIO_TOKEN)
        self.sent_leads: list[int] = []
        self.lock = threading.Lock()

    def _twilio(self, client: httpx.Client, path: str, form: dict[str, str]) -> httpx.Response:
        sig = self.twilio.compute_signature(PUBLIC_URL + path, form)
        return client.post(path, data=form, headers={"X-Twilio-Signature": sig})

    def send(self, kind: str, i: int, rng: random.Random) -> httpx.Response:
        client = self.clients[i % len(self.clients)]
        phone = f"+1212555{rng.randrange(10_000):04d}"
        if kind == "events":
            batch: list[Any] = [
                {
                    "email": f"lead{rng.randrange(100_000)}@soak.example",
                    "timestamp": int(time.time()) - 30,
                    "event": rng.choice(["delivered", "open", "click", "processed", "bounce"]),
                    "sg_event_id": uuid.uuid4().hex,
                    "sg_message_id": f"{uuid.uuid4().hex}.filter0001",
                    "touch_key": f"{rng.randrange(100_000)}-intro-1",
                }
                for _ in range(rng.randint(1, 50))
            ]
            if rng.random() < 0.05:
                batch.append({"event": 42})  # malformed: skipped and reported
            body = json.dumps(batch).encode()
            ts = str(int(time.time()))
            sig = self.key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
            return client.post(
                "/webhooks/sendgrid/events",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Twilio-Email-Event-Webhook-Timestamp": ts,
                    "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                },
            )
        if kind == "lead":
            with self.lock:
                retry = self.sent_leads and rng.random() < 0.1
                n = rng.choice(self.sent_leads) if retry else i
                if not retry:
                    self.sent_leads.append(n)
            return client.post(
                "/leads",
                json=_lead(n),
                headers={"X-API-Key": API_KEY, "Idempotency-Key": f"soak-{n}"},
            )
        if kind in ("unsub_get", "unsub_post"):
            touch = f"{rng.randrange(100_000)}-intro-1"
            token = sign_token(touch, UNSUB_SECRET if rng.random() < 0.8 else "forged")
            if kind == "unsub_get":
                return client.get(f"/unsubscribe/{token}")
            return client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        if kind == "sms":
            text = rng.choice(["STOP", "START", "HELP", "Sounds good, call me Tuesday"])
            form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": phone, "To": "+12125550100",
                    "Body": text}  # fmt: skip
            return self._twilio(client, "/webhooks/twilio/sms", form)
        status = rng.choice(["queued", "sent", "delivered", "undelivered"])
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "MessageStatus": status, "To": phone}
        path = f"/webhooks/twilio/message-status?touch_key={rng.randrange(100_000)}-sms-1"
        return self._twilio(client, path, form)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--rate", type=float, default=40.0, help="requests per second, all routes")
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--database-url", help="PostgreSQL (a fresh schema is made in it)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="touchflow-soak-"))
    if args.database_url:
        db = _fresh_schema(args.database_url)
    else:
        db = f"sqlite:///{tmp / 'soak.db'}"
        args.servers = 1
    upgrade(make_engine(db))
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    env = {
        **os.environ,
        "TOUCHFLOW_DATABASE_URL": db,
        "TOUCHFLOW_API_KEY": API_KEY,
        "TOUCHFLOW_PUBLIC_URL": PUBLIC_URL,
        "TOUCHFLOW_UNSUBSCRIBE_SECRET": UNSUB_SECRET,
        "TOUCHFLOW_AUTH__SESSION_SECRET": "soak-session-secret",
        **PRODUCTION_SENDER_ENV,
        "TOUCHFLOW_TWILIO__AUTH_TOKEN": TWILIO_TOKEN,
        "TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY": base64.b64encode(public).decode(),
    }
    ports = [_free_port() for _ in range(args.servers)]
    serve = [sys.executable, "-m", "touchflow", "serve", "--no-access-log", "--host", "127.0.0.1"]
    apis = [
        subprocess.Popen(
            [*serve, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            # Kept for the start: a server that refuses to start says why there.
            stderr=(tmp / f"serve-{port}.log").open("w"),
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    kinds = [k for k, weight in MIX for _ in range(weight)]
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    lock = threading.Lock()
    try:
        for base, port in zip(bases, ports, strict=True):
            try:
                _wait(f"{base}/healthz")
            except RuntimeError:
                sys.stderr.write((tmp / f"serve-{port}.log").read_text())
                raise
        mix = Mix(bases, key)
        warm = random.Random(0)
        for i in range(50):  # connections, caches, the first writes
            mix.send(kinds[i % len(kinds)], 10_000_000 + i, warm)
        rss_start = {p.pid: _rss_mb(p.pid) for p in apis}
        # RSS every tenth of the run: growth that levels off (caches filling) is not a leak.
        timeline: list[list[float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(args.seconds / 10):
                timeline.append([_rss_mb(p.pid) for p in apis])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def one(i: int, due: float) -> None:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            rng = random.Random(i)
            kind = kinds[rng.randrange(len(kinds))]
            t0 = time.perf_counter()
            try:
                status = str(mix.send(kind, i, rng).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            with lock:
                latencies[kind].append((time.perf_counter() - t0) * 1000)
                statuses[kind][status] += 1

        n = int(args.rate * args.seconds)
        start = time.perf_counter() + 0.2
        with ThreadPoolExecutor(max_workers=64) as pool:
            for i in range(n):
                pool.submit(one, i, start + i / args.rate)
        wall = time.perf_counter() - start
        done.set()
        rss_end = {p.pid: _rss_mb(p.pid) for p in apis}
    finally:
        for proc in apis:
            proc.terminate()
        for proc in apis:
            proc.wait(10)

    def is_error(kind: str, status: str) -> bool:
        return (
            not status.isdigit()
            or int(status) >= 500
            or (int(status) >= 400 and int(status) not in EXPECTED.get(kind, set()))
        )

    out = {
        "database": db.split("://")[0].split("+")[0],
        "servers": args.servers,
        "seconds": round(wall, 1),
        "requests": sum(sum(c.values()) for c in statuses.values()),
        "server_errors": sum(
            n for c in statuses.values() for s, n in c.items() if not s.isdigit() or s[0] == "5"
        ),
        "errors_by_status": dict(
            sum(
                (
                    Counter({s: n for s, n in c.items() if is_error(k, s)})
                    for k, c in statuses.items()
                ),
                Counter(),
            )
        ),
        "statuses_by_route": {k: dict(c) for k, c in statuses.items()},
        "p50_ms": {k: round(_percentile(v, 0.50), 1) for k, v in latencies.items()},
        "p99_ms": {k: round(_percentile(v, 0.99), 1) for k, v in latencies.items()},
        "rss_mb_start": list(rss_start.values()),
        "rss_mb_end": list(rss_end.values()),
        "rss_mb_every_tenth": timeline,
    }
    print(f"{out['requests']} requests in {out['seconds']} s on {out['database']}, "
          f"{args.servers} server(s): {out['server_errors']} 5xx/connection errors")  # fmt: skip
    for kind in sorted(latencies):
        print(f"  {kind:<11} p50 {out['p50_ms'][kind]:>7} ms  p99 {out['p99_ms'][kind]:>7} ms"
              f"  {dict(statuses[kind])}")  # fmt: skip
    print(f"RSS MB start {out['rss_mb_start']} end {out['rss_mb_end']}; every tenth: {timeline}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
