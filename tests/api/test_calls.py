"""Click-to-call through a fake Dialer: auth, checks before a phone rings, the event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import insert, select, update

from tests.api.conftest import API_KEY, PEOPLE, World, build_world
from touchflow.errors import RetryableError
from touchflow.store.schema import events, prospects, tasks
from touchflow.store.suppressions import add_suppression

ANN = PEOPLE[0]
AGENT = {"agent_number": "+1 (212) 555-0177"}


def _call(world: World, task_id: int, key: str | None = API_KEY, body: Any = AGENT) -> Any:
    headers = {"X-API-Key": key} if key is not None else {}
    return world.client.post(f"/tasks/{task_id}/call", json=body, headers=headers)


def _at(world: World, iso: str) -> None:
    world.clock[0] = datetime.fromisoformat(iso).astimezone(UTC)


def test_call_is_placed_and_recorded(world: World, call_task):
    _at(world, "2026-12-02T11:00:00-05:00")
    r = _call(world, call_task.id)
    assert r.status_code == 200, r.text
    sid = r.json()["call_sid"]
    assert sid.startswith("CA")
    [placed] = world.dialer.calls
    assert placed == {
        "agent_number": "+12125550177",
        "from_number": "+12125550100",
        "twiml_url": f"https://hooks.touchflow.example/twilio/voice/bridge/{call_task.id}",
        "status_callback_url": (
            f"https://hooks.touchflow.example/webhooks/twilio/call-status?task_id={call_task.id}"
        ),
    }
    ev = world.events(type="call_started")[0]
    assert (ev.touch_key, ev.payload["call_sid"]) == (call_task.touch_key, sid)


def test_the_dial_happens_after_the_checks_committed(world: World, call_task):
    """No transaction is open while the provider is called: another connection sees the request."""
    _at(world, "2026-12-02T11:00:00-05:00")
    seen: list[list[str]] = []

    def look() -> None:
        with world.engine.connect() as other:
            q = select(events.c.type).where(events.c.touch_key == call_task.touch_key)
            seen.append(list(other.execute(q).scalars()))
        with world.engine.begin() as other:  # and could write: no lock is held
            other.execute(update(tasks).where(tasks.c.id == -1).values(notes="x"))

    world.dialer.on_call = look
    assert _call(world, call_task.id).status_code == 200
    assert seen == [["call_requested"]]
    assert [e.type for e in world.events(touch_key=call_task.touch_key)] == [
        "call_requested",
        "call_started",
    ]


def test_a_failed_dial_is_recorded_and_the_task_stays_callable(world: World, call_task):
    _at(world, "2026-12-02T11:00:00-05:00")
    outage = RetryableError("503 from Twilio", connector="twilio", operation="call")
    world.dialer.failures = [outage]
    r = _call(world, call_task.id)
    assert r.status_code == 503 and "503 from Twilio" in r.json()["detail"]
    [failed] = world.events(type="call_failed")
    assert "503 from Twilio" in failed.payload["error"] and world.dialer.calls == []
    assert world.events(type="call_started") == []
    again = _call(world, call_task.id)
    assert again.status_code == 200, again.text
    assert len(world.events(type="call_started")) == 1
    assert len(world.events(type="call_requested")) == 2


def test_api_key_is_required(world: World, call_task):
    assert _call(world, call_task.id, key=None).status_code == 401
    assert _call(world, call_task.id, key="wrong").status_code == 401
    assert world.dialer.calls == []


def test_no_api_key_or_dialer_configured_is_503(db, tmp_path):
    w = build_world(db, tmp_path, api_key=None)
    assert _call(w, 1).status_code == 503
    w.client.app.state.touchflow.dialer = None
    w.client.app.state.touchflow.settings = w.client.app.state.touchflow.settings.model_copy(
        update={"api_key": SecretStr(API_KEY)}
    )
    r = _call(w, 1)
    assert r.status_code == 503 and "dialer" in r.json()["detail"]


def test_outside_contact_hours_is_refused(world: World, call_task):
    _at(world, "2026-12-02T07:30:00-05:00")
    r = _call(world, call_task.id)
    assert r.status_code == 409
    assert "07:30 in America/New_York" in r.json()["detail"]
    _at(world, "2026-12-02T21:00:00-05:00")
    assert _call(world, call_task.id).status_code == 409
    assert world.dialer.calls == []


def test_refusals_name_the_reason(world: World, call_task):
    _at(world, "2026-12-02T11:00:00-05:00")
    assert _call(world, 999_999).status_code == 404
    assert _call(world, call_task.id, body={}).status_code == 422
    assert _call(world, call_task.id, body={"agent_number": "12"}).status_code == 422
    assert _call(world, call_task.id, body=[1]).status_code == 422
    r = world.client.post(
        f"/tasks/{call_task.id}/call", content=b"{", headers={"X-API-Key": API_KEY}
    )
    assert r.status_code == 422

    with world.engine.begin() as conn:
        add_suppression(
            conn, "phone", "+12125550101", reason="sms_stop", source="t", now=world.clock[0]
        )
    r = _call(world, call_task.id)
    assert r.status_code == 409 and "suppressed (sms_stop)" in r.json()["detail"]
    with world.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM suppressions")
        conn.execute(update(prospects).where(prospects.c.email == ANN).values(phone=None))
    r = _call(world, call_task.id)
    assert r.status_code == 422 and "no phone" in r.json()["detail"]
    with world.engine.begin() as conn:
        conn.execute(
            update(prospects)
            .where(prospects.c.email == ANN)
            .values(phone="+12125550101", timezone=None, country=None)
        )
    r = _call(world, call_task.id)
    assert r.status_code == 422 and "time zone" in r.json()["detail"]
    with world.engine.begin() as conn:
        conn.execute(update(prospects).where(prospects.c.email == ANN).values(country="DE"))
    _at(world, "2026-12-02T22:00:00+01:00")  # 16:00 in New York, 22:00 in Berlin
    r = _call(world, call_task.id)
    assert r.status_code == 409 and "Europe/Berlin" in r.json()["detail"]

    with world.engine.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.id == call_task.id).values(status="done"))
    r = _call(world, call_task.id)
    assert r.status_code == 409 and "done" in r.json()["detail"]
    with world.engine.begin() as conn:
        tid = conn.execute(
            insert(tasks).values(
                touch_key="x-linkedin-1",
                enrollment_id=call_task.enrollment_id,
                step_id="li",
                channel="linkedin",
                owner_email="sdr@x.example",
                title="Connect",
                status="open",
                due_at=world.clock[0],
                created_at=world.clock[0],
            )
        ).inserted_primary_key[0]
    r = _call(world, tid)
    assert r.status_code == 422 and "not a call" in r.json()["detail"]
    assert world.dialer.calls == []


def test_healthz(world: World):
    assert world.client.get("/healthz").json() == {"status": "ok"}
