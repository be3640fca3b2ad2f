"""POST /leads: normalize, enrich, score, route, enroll, push to the CRM, notify, idempotently."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from tests.conftest import ROOT
from touchflow.adapters.fake_crm import FakeCrm
from touchflow.bootstrap import lead_services
from touchflow.entrypoints.api import create_app
from touchflow.entrypoints.api.leads import PUSH_HOLD
from touchflow.errors import RetryableError
from touchflow.services.crm_sync import drain_outbox
from touchflow.services.leads import IN_FLIGHT_TIMEOUT, KEY_TTL, begin_request, payload_hash
from touchflow.settings import Settings
from touchflow.store.schema import crm_outbox, enrollments, prospects, route_assignments

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Monday 10:00 New York
KEY = "lead-api-key"
LEAD = {
    "email": " Dana.Whitfield@Northwind.example ",
    "first_name": "Dana",
    "last_name": "Whitfield",
    "title": "VP of Sales",
    "company": "Northwind Analytics",
    "website": "https://www.northwind.example/about",
    "phone": "(415) 555-0134",
    "country": "US",
    "utm_source": "webinar",
}


@dataclass
class Recorder:
    sent: list[tuple[str, str]] = field(default_factory=list)

    def notify(self, to_email: str, text: str) -> None:
        self.sent.append((to_email, text))


class DownCrm(FakeCrm):
    """A CRM that is down until ``up`` is set."""

    up = False

    def upsert_people(self, people):  # type: ignore[no-untyped-def]
        if not self.up:
            raise RetryableError("503 maintenance", connector="fake", operation="upsert_people",
                                 status=503)  # fmt: skip
        return super().upsert_people(people)


def _app(
    db: Engine,
    crm: FakeCrm,
    notifier: Recorder,
    config: Path = ROOT / "config",
    clock: list[datetime] | None = None,
) -> TestClient:
    settings = Settings(
        _env_file=None,
        api_key=KEY,
        cadences_dir=ROOT / "cadences",
        templates_dir=ROOT / "templates",
        config_dir=config,
        crm={"provider": "fake"},
    )
    services = lead_services(settings)
    services.crm = crm.name
    for email in {m.email for m in services.router.team.members}:  # type: ignore[union-attr]
        crm.seed_owner(email, email.split("@")[0])
    now = clock if clock is not None else [NOW]
    app = create_app(settings, engine=db, leads=services, crm=crm, notifier=notifier,
                     clock=lambda: now[0])  # fmt: skip
    return TestClient(app)


def _post(client: TestClient, body: Any, key: str | None = "k-1", api_key: str = KEY) -> Any:
    headers = {"X-API-Key": api_key}
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/leads", json=body, headers=headers)


def test_a_lead_is_scored_routed_enrolled_pushed_and_the_ae_told(db: Engine):
    crm, note = FakeCrm(), Recorder()
    client = _app(db, crm, note)
    r = _post(client, LEAD)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["email"] == "dana.whitfield@northwind.example"
    assert d["score"] is not None and d["grade"] in "ABCD" and d["reasons"]
    assert "@" in d["assignee"] and d["rule"] and d["sla_due_at"]
    assert (d["cadence"], d["enrolled"], d["crm"]) == ("inbound-fast-follow", True, "pushed")
    assert crm.count("person") == 1
    assert note.sent and note.sent[0][0] == d["assignee"]
    with db.connect() as conn:
        p = conn.execute(select(prospects).where(prospects.c.email == d["email"])).one()
        assert (p.seniority, p.department, p.ae_email) == ("vp", "sales", d["assignee"])
        assert p.phone == "+14155550134" and p.crm_person_id
        (enr,) = conn.execute(select(enrollments)).all()
        assert enr.owner_email == d["assignee"]

    # The same request again: the same answer, nothing new anywhere.
    again = _post(client, LEAD)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["assignee"] == d["assignee"]
    assert crm.count("person") == 1 and len(note.sent) == 1
    with db.connect() as conn:
        assert len(conn.execute(select(route_assignments)).all()) == 1


@pytest.mark.parametrize(
    "body,code",
    [
        ({"first_name": "No email"}, "missing_email"),
        ({"email": "not an email"}, "invalid_email"),
        ({"email": "a@b.example", "notes": {"nested": 1}}, "bad_field"),
    ],
)
def test_bad_leads_get_422_with_why(db: Engine, body: Any, code: str):
    client = _app(db, FakeCrm(), Recorder())
    r = _post(client, body, key=None)
    assert r.status_code == 422 and r.json()["code"] == code


def test_auth_and_body_shape(db: Engine):
    client = _app(db, FakeCrm(), Recorder())
    assert _post(client, LEAD, api_key="wrong").status_code == 401
    assert client.post("/leads", content=b"[1]", headers={"X-API-Key": KEY}).status_code == 422
    assert client.post("/leads", content=b"{", headers={"X-API-Key": KEY}).status_code == 422


def test_a_crm_that_is_down_queues_the_push_and_loses_nothing(db: Engine):
    crm = DownCrm()
    client = _app(db, crm, Recorder())
    r = _post(client, LEAD)
    assert r.status_code == 201 and r.json()["crm"] == "queued"
    with db.connect() as conn:
        (row,) = conn.execute(select(crm_outbox)).all()
    assert (row.status, row.attempts) == ("pending", 1)
    assert "503 maintenance" in row.last_error
    crm.up = True
    report = drain_outbox(db, crm, row.next_attempt_at)
    assert report.pushed == 1 and crm.count("person") == 1
    assert drain_outbox(db, crm, row.next_attempt_at).pushed == 0  # done: not pushed twice


class CrashingCrm(FakeCrm):
    """The API process dies between its commit and its own push (simulated by raising)."""

    crashed = False

    def upsert_people(self, people):  # type: ignore[no-untyped-def]
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("killed")  # not a connector error: nothing marks the outbox row
        return super().upsert_people(people)


def test_a_push_cut_off_by_a_crash_is_left_to_the_drain_after_the_hold(db: Engine):
    crm = CrashingCrm()
    client = _app(db, crm, Recorder())
    # The crash is an unexpected error: a 500 problem document, the traceback only in the log.
    r = _post(client, LEAD)
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["request_id"] == r.headers["x-request-id"] and "killed" not in r.text
    with db.connect() as conn:
        (row,) = conn.execute(select(crm_outbox)).all()
        assert conn.execute(select(prospects.c.ae_email)).scalar()  # the lead itself committed
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.next_attempt_at == NOW + PUSH_HOLD
    # While the API could still be pushing it, a drain leaves it alone ...
    assert drain_outbox(db, crm, NOW + PUSH_HOLD / 2).pushed == 0
    # ... after the hold it pushes it, once.
    assert drain_outbox(db, crm, NOW + PUSH_HOLD).pushed == 1
    assert drain_outbox(db, crm, NOW + 2 * PUSH_HOLD).pushed == 0
    assert crm.count("person") == 1


def test_an_iranian_lead_goes_to_mena_not_to_europe_when_regions_overlap(
    db: Engine, tmp_path: Path
):
    # The trial's routing.yaml: a MENA region that shares AE, SA, QA with EMEA, a rule for it
    # before EMEA's, and Farid (Dubai) covering MENA. Every EMEA AE used to join its pool.
    shutil.copytree(ROOT / "config", tmp_path / "config")
    routing = tmp_path / "config/routing.yaml"
    routing.write_text(
        routing.read_text()
        .replace("  emea: [GB,", "  mena: [IR, AE, SA, QA]\n  emea: [GB,", 1)
        .replace(
            "  - name: emea\n",
            "  - name: mena\n    kind: territory\n    match: {regions: [mena]}\n"
            "    pool: {role: ae, territories: [mena]}\n  - name: emea\n",
            1,
        )
    )
    team = tmp_path / "config/team.yaml"
    team.write_text(team.read_text().replace("[AE, SA, QA, emea]", "[mena, emea]", 1))
    client = _app(db, FakeCrm(), Recorder(), tmp_path / "config")
    got = set()
    for i in range(3):
        body = {**LEAD, "email": f"reza{i}@pars{i}.example", "country": "IR", "phone": None}
        r = _post(client, body, key=f"ir-{i}")
        assert r.status_code == 201, r.text
        assert r.json()["rule"] == "mena"
        got.add(r.json()["assignee"])
    assert got == {"farid.haddad@yourco.com"}


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"NaN", b"Infinity"])
def test_a_number_that_is_not_finite_is_refused(db: Engine, number: bytes):
    # 1e999 parsed as infinity and was stored as "inf" on the prospect.
    client = _app(db, FakeCrm(), Recorder())
    raw = b'{"email": "a@northwind.example", "employees": ' + number + b"}"
    r = client.post("/leads", content=raw, headers={"X-API-Key": KEY})
    assert r.status_code == 422 and r.json()["code"] == "bad_number", r.text
    with db.connect() as conn:
        assert conn.execute(select(prospects)).all() == []


def _prospect_count(db: Engine) -> int:
    with db.connect() as conn:
        return len(conn.execute(select(prospects)).all())


def test_a_key_reused_with_another_body_is_refused(db: Engine):
    # This used to answer the first lead again, silently dropping the second.
    client = _app(db, FakeCrm(), Recorder())
    assert _post(client, LEAD, key="k-7").status_code == 201
    other = {**LEAD, "email": "someone.else@northwind.example"}
    r = _post(client, other, key="k-7")
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused", r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert _prospect_count(db) == 1
    # The same body again is still the first answer; the key in the body counts the same.
    again = client.post(
        "/leads", json={**LEAD, "idempotency_key": "k-7"}, headers={"X-API-Key": KEY}
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_a_key_in_flight_gets_409_until_its_claim_is_abandoned(db: Engine):
    clock = [NOW]
    client = _app(db, FakeCrm(), Recorder(), clock=clock)
    # Another process claimed the key and is still processing its lead.
    with db.begin() as conn:
        assert begin_request(conn, "k-9", payload_hash(LEAD), NOW) is None
    r = _post(client, LEAD, key="k-9")
    assert r.status_code == 409 and r.json()["code"] == "request_in_flight", r.text
    assert r.headers["retry-after"] == "1"
    assert _prospect_count(db) == 0
    # That process died: after the timeout the key is free, and the lead is taken once.
    clock[0] = NOW + IN_FLIGHT_TIMEOUT + timedelta(seconds=1)
    assert _post(client, LEAD, key="k-9").status_code == 201
    assert _post(client, LEAD, key="k-9").json()["duplicate"] is True


def test_keys_expire_after_a_day(db: Engine):
    clock = [NOW]
    client = _app(db, FakeCrm(), Recorder(), clock=clock)
    assert _post(client, LEAD, key="k-1").status_code == 201
    clock[0] = NOW + KEY_TTL + timedelta(seconds=1)
    other = {**LEAD, "email": "someone.else@northwind.example"}
    assert _post(client, other, key="k-1").status_code == 201  # a new request, a new lead


def test_a_rejected_lead_frees_its_key_for_the_corrected_one(db: Engine):
    client = _app(db, FakeCrm(), Recorder())
    bad = {**LEAD, "email": "not an email"}
    assert _post(client, bad, key="k-3").json()["code"] == "invalid_email"
    assert _post(client, LEAD, key="k-3").status_code == 201


def test_a_quoted_key_is_the_same_key(db: Engine):
    client = _app(db, FakeCrm(), Recorder())
    assert _post(client, LEAD, key='"k-5"').status_code == 201
    assert _post(client, LEAD, key="k-5").json()["duplicate"] is True
