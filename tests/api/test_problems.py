"""Every error is an RFC 9457 problem document; no input gives a 500 it did not earn."""

from __future__ import annotations

import logging
from typing import Any

import jsonschema
import pytest

from tests.api.conftest import API_KEY, World

PROBLEM = "application/problem+json"
AGENT = {"agent_number": "+14155550100"}


def _schema_of(world: World, path: str, method: str, status: int) -> dict[str, Any]:
    spec = world.client.get("/openapi.json").json()
    answer = spec["paths"][path][method]["responses"][str(status)]
    schema = answer["content"][PROBLEM]["schema"]
    return {**schema, "components": spec["components"]}


def _is_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert doc["status"] == status and isinstance(doc["detail"], str) and doc["title"]
    assert doc["request_id"] == r.headers["x-request-id"]
    assert doc["instance"] == r.request.url.path
    return doc


def test_a_huge_task_id_in_the_bridge_is_refused_not_an_overflow(world: World):
    # Signed correctly: this was OverflowError (Python int too large to convert to SQLite INTEGER).
    r = world.post_twilio("/twilio/voice/bridge/99999999999999999999999999", {"CallSid": "CA1"})
    doc = _is_problem(r, 422)
    assert doc["errors"][0]["loc"] == ["path", "task_id"]
    r = world.post_twilio("/twilio/voice/bridge/2147483648", {"CallSid": "CA1"})
    _is_problem(r, 422)
    assert world.event_count() == 0


def test_ids_are_bounded_in_every_route(world: World):
    big = "9" * 30
    headers = {"X-API-Key": API_KEY}
    _is_problem(world.client.post(f"/tasks/{big}/call", json=AGENT, headers=headers), 422)
    _is_problem(world.client.post("/tasks/0/call", json=AGENT, headers=headers), 422)
    r = world.post_twilio(f"/webhooks/twilio/call-status?task_id={big}", {"CallSid": "CA1"})
    _is_problem(r, 422)
    r = world.post_twilio("/webhooks/twilio/message-status?touch_key=" + "k" * 201, {})
    _is_problem(r, 422)
    assert world.event_count() == 0


def test_a_422_answer_is_what_the_schema_declares(world: World):
    # The schema declared detail as an array while the answer carried a string.
    r = world.post_twilio("/twilio/voice/bridge/not-a-number", {})
    doc = _is_problem(r, 422)
    schema = _schema_of(world, "/twilio/voice/bridge/{task_id}", "post", 422)
    jsonschema.validate(doc, schema)
    assert doc["errors"] and isinstance(doc["errors"], list)


def test_refusals_are_problem_documents(world: World):
    doc = _is_problem(world.client.post("/tasks/1/call", json=AGENT), 401)
    jsonschema.validate(doc, _schema_of(world, "/tasks/{task_id}/call", "post", 401))
    _is_problem(world.post_twilio("/webhooks/twilio/sms", {}, token="forged"), 403)
    _is_problem(world.post_events(b"[]", signature="bm9wZQ=="), 403)
    _is_problem(world.client.get("/no/such/route"), 404)
    _is_problem(world.client.get("/leads"), 405)


def test_an_unexpected_error_is_a_500_problem_logged_and_counted(
    world: World, call_task: Any, caplog: pytest.LogCaptureFixture
):
    def broken() -> None:
        raise RuntimeError("secret internals")

    world.dialer.on_call = broken
    with caplog.at_level(logging.ERROR, logger="touchflow.api"):
        r = world.client.post(
            f"/tasks/{call_task.id}/call",
            json=AGENT,
            headers={"X-API-Key": API_KEY, "X-Request-ID": "req-42"},
        )
    doc = _is_problem(r, 500)
    assert doc["request_id"] == "req-42"
    assert "secret internals" not in r.text and "Traceback" not in r.text
    (record,) = [rec for rec in caplog.records if "req-42" in rec.getMessage()]
    assert record.exc_info is not None  # the traceback is in the log, not the answer
    metrics = world.client.get("/metrics").text
    assert (
        'touchflow_api_unhandled_errors_total{method="POST",route="/tasks/{task_id}/call"} 1.0'
        in metrics
    )


def test_a_request_id_that_is_not_an_id_is_replaced(world: World):
    r = world.client.get("/healthz", headers={"X-Request-ID": "x\ty" * 40})
    assert r.headers["x-request-id"] != "x\ty" * 40 and len(r.headers["x-request-id"]) == 32


def test_a_twilio_form_over_64_kib_is_refused_unread(world: World):
    r = world.post_twilio("/webhooks/twilio/sms", {"MessageSid": "SM1", "Body": "x" * 70_000})
    _is_problem(r, 413)
    assert world.event_count() == 0
