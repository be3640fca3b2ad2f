"""An API over a store with real touches (sent by the Harness), signed requests, a fixed clock."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from twilio.request_validator import RequestValidator

from tests.support.harness import Harness, make_cadence, prospect
from touchflow.adapters.fakes import FakeDialer
from touchflow.entrypoints.api import create_app
from touchflow.settings import Settings
from touchflow.store.schema import enrollments, events, prospects, touches

# Monday 10:00 in New York: the Harness's first tick sends every intro email.
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
NOW = MON + timedelta(hours=1)
PUBLIC_URL = "https://hooks.touchflow.example"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
PARSE_TOKEN = "parse-secret"
API_KEY = "api-key-for-tests"
UNSUB_SECRET = "unsubscribe-secret-for-tests"
PEOPLE = ("ann@acme.example", "bob@acme.example", "cy@globex.example")


def new_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key and its public half as SendGrid shows it (base64 DER SubjectPublicKeyInfo)."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


KEY, PUBLIC_KEY = new_key()


def sign(body: bytes, timestamp: str, key: ec.EllipticCurvePrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "unsubscribe_secret": UNSUB_SECRET,
        "api_key": API_KEY,
        "sendgrid": {"webhook_public_key": PUBLIC_KEY, "inbound_parse_token": PARSE_TOKEN},
        "twilio": {"auth_token": TWILIO_TOKEN, "from_number": "+12125550100"},
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class World:
    """The store, the harness that filled it, and a client of the API over it."""

    engine: Engine
    harness: Harness
    client: TestClient
    dialer: FakeDialer
    clock: list[datetime]

    # -- store --------------------------------------------------------------
    def touch(self, email: str, step: str = "intro") -> Any:
        with self.engine.connect() as conn:
            return conn.execute(
                select(touches)
                .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
                .join(prospects, prospects.c.id == enrollments.c.prospect_id)
                .where(prospects.c.email == email, touches.c.step_id == step)
            ).one()

    def prospect(self, email: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(prospects).where(prospects.c.email == email)).one()

    def enrollments_of(self, email: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(enrollments)
                    .join(prospects, prospects.c.id == enrollments.c.prospect_id)
                    .where(prospects.c.email == email)
                    .order_by(enrollments.c.cadence_id)
                )
            )

    def event_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(events)).scalar_one()

    def events(self, **where: Any) -> list[Any]:
        q = select(events).order_by(events.c.id)
        for k, v in where.items():
            q = q.where(events.c[k] == v)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    # -- requests -------------------------------------------------------------
    def sg_event(self, email: str, event: str, **extra: Any) -> dict[str, Any]:
        """A SendGrid event about the intro email to ``email``."""
        item: dict[str, Any] = {
            "email": email,
            "timestamp": int(self.clock[0].timestamp()) - 30,
            "event": event,
            "sg_event_id": uuid.uuid4().hex,
            "sg_message_id": "abc.filter0001",
            "touch_key": self.touch(email).key,
        }
        item.update(extra)
        return item

    def post_events(
        self,
        batch: Sequence[Any] | bytes,
        *,
        timestamp: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        body = batch if isinstance(batch, bytes) else json.dumps(list(batch)).encode()
        ts = timestamp if timestamp is not None else str(int(self.clock[0].timestamp()))
        h = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": signature or sign(body, ts),
        }
        if headers is not None:
            h = headers
        return self.client.post("/webhooks/sendgrid/events", content=body, headers=h)

    def post_twilio(
        self, path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN, **kw: Any
    ) -> Any:
        sig = RequestValidator(token).compute_signature(PUBLIC_URL + path, params)
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": sig}, **kw)


def build_world(engine: Engine, tmp_path: Any, **settings: Any) -> World:
    h = Harness(engine, make_cadence(tmp_path))
    h.add(
        [
            prospect(PEOPLE[0], domain="acme.example", phone="+12125550101"),
            prospect(PEOPLE[1], domain="acme.example", phone="+12125550102"),
            prospect(PEOPLE[2], domain="globex.example", phone="+12125550103"),
        ],
        MON - timedelta(days=2),
    )
    report = h.tick(MON)
    assert report.sent == len(PEOPLE), report
    clock = [NOW]
    dialer = FakeDialer()
    app = create_app(
        make_settings(**settings),
        engine=engine,
        runtimes=h.runtimes,
        dialer=dialer,
        clock=lambda: clock[0],
    )
    return World(engine, h, TestClient(app), dialer, clock)


@pytest.fixture
def world(db: Engine, tmp_path: Any) -> Iterator[World]:
    w = build_world(db, tmp_path)
    with w.client:
        yield w


@pytest.fixture
def call_task(world: World) -> Any:
    """ANN's open call task (the cadence's call-1 step, two business days after the intro)."""
    from touchflow.store.tasks import list_tasks

    world.harness.tick(MON + timedelta(days=2, hours=1))
    with world.engine.connect() as conn:
        tasks = [t for t in list_tasks(conn) if t.email == PEOPLE[0]]
    assert len(tasks) == 1 and tasks[0].channel == "call"
    return tasks[0]
