"""SendGrid Event Webhook: signatures, dedupe, bounces, opt-outs, malformed batches."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.api.conftest import PEOPLE, PUBLIC_KEY, World, build_world, new_key, sign
from tests.support.harness import make_cadence
from touchflow.store.enrollments import enroll
from touchflow.store.schema import enrollments, suppressions, touches

ANN, BOB, CY = PEOPLE


def test_signed_batch_is_stored_and_matched_to_touches(world: World):
    batch = [world.sg_event(ANN, e) for e in ("processed", "delivered", "open", "click")]
    r = world.post_events(batch)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 4 and r.json()["unmatched"] == 0
    touch = world.touch(ANN)
    stored = world.events(touch_key=touch.key)
    assert [e.type for e in stored] == ["processed", "delivered", "opened", "clicked"]
    assert {e.enrollment_id for e in stored} == {touch.enrollment_id}
    assert stored[2].payload["sg_event_id"] == batch[2]["sg_event_id"]
    assert world.enrollments_of(ANN)[0].state == "active"


def _forged(world: World, body: bytes, ts: str) -> dict[str, str]:
    other, _ = new_key()
    return {
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
        "X-Twilio-Email-Event-Webhook-Signature": sign(body, ts, other),
    }


@pytest.mark.parametrize(
    "case", ["forged", "stale", "future", "missing", "tampered", "garbage_sig", "bad_ts"]
)
def test_refused_requests_store_nothing(world: World, case: str):
    batch = [world.sg_event(ANN, "bounce", type="bounce")]
    body = json.dumps(batch).encode()
    now = int(world.clock[0].timestamp())
    ts = str(now)
    headers = {
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
        "X-Twilio-Email-Event-Webhook-Signature": sign(body, ts),
    }
    if case == "forged":
        headers = _forged(world, body, ts)
    elif case == "stale":
        ts = str(now - 301)
        headers = {
            "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": sign(body, ts),
        }
    elif case == "future":
        ts = str(now + 600)
        headers = {
            "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": sign(body, ts),
        }
    elif case == "missing":
        headers = {}
    elif case == "tampered":
        body = body.replace(b"bounce", b"bounc3")
    elif case == "garbage_sig":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!!"
    elif case == "bad_ts":
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = "yesterday"
    r = world.post_events(body, headers=headers)
    assert r.status_code == 403, r.text
    assert world.event_count() == 0
    assert world.enrollments_of(ANN)[0].state == "active"


def test_recent_signature_within_max_age_is_accepted(world: World):
    batch = [world.sg_event(ANN, "delivered")]
    ts = str(int(world.clock[0].timestamp()) - 299)
    assert world.post_events(batch, timestamp=ts).status_code == 200


def test_unconfigured_or_bad_public_key_is_a_server_problem(db, tmp_path):
    for sg in ({"webhook_public_key": None}, {"webhook_public_key": "bm90IGEga2V5"}):
        w = build_world(db, tmp_path / str(len(str(sg))), sendgrid=sg)
        r = w.post_events([])
        assert r.status_code == 503, r.text
        assert "WEBHOOK_PUBLIC_KEY" in r.json()["detail"]
        db_events = w.event_count()
        assert db_events == 0
        # Start from a clean store for the next round.
        with db.begin() as conn:
            for t in ("events", "tasks", "touches", "enrollments", "cadence_versions"):
                conn.exec_driver_sql(f"DELETE FROM {t}")
            conn.exec_driver_sql("DELETE FROM suppressions")
            conn.exec_driver_sql("DELETE FROM prospects")


def test_same_event_five_times_changes_state_once(world: World):
    batch = [world.sg_event(ANN, "bounce", type="bounce"), world.sg_event(ANN, "open")]
    answers = [world.post_events(batch).json() for _ in range(5)]
    assert [a["stored"] for a in answers] == [2, 0, 0, 0, 0]
    assert [a["applied"] for a in answers] == [1, 0, 0, 0, 0]
    assert [a["duplicates"] for a in answers] == [0, 2, 2, 2, 2]
    assert world.event_count() == 2
    # Repeated inside one batch, too.
    twice = world.sg_event(BOB, "delivered")
    assert world.post_events([twice, twice]).json()["stored"] == 1


def test_concurrent_deliveries_change_state_once(world: World):
    batch = [world.sg_event(ANN, "bounce", type="bounce"), world.sg_event(BOB, "spamreport")]
    batch += [world.sg_event(CY, "delivered") for _ in range(50)]
    body = json.dumps(batch).encode()
    barrier = threading.Barrier(5)
    answers: list[dict] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            r = world.post_events(body)
            assert r.status_code == 200, r.text
            answers.append(r.json())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(a["stored"] for a in answers) == len(batch)
    assert sum(a["applied"] for a in answers) == 2
    assert world.event_count() == len(batch)
    assert world.enrollments_of(ANN)[0].state == "bounced"
    assert world.enrollments_of(BOB)[0].state == "opted_out"


def test_bounce_ends_the_enrollment_and_suppresses_the_address(world: World):
    dropped = world.sg_event(BOB, "dropped", reason="Bounced Address")
    r = world.post_events([world.sg_event(ANN, "bounce", type="bounce"), dropped])
    assert r.json()["applied"] == 2
    for email in (ANN, BOB):
        enr = world.enrollments_of(email)[0]
        assert (enr.state, enr.reason, enr.next_due_at) == ("bounced", "bounced", None)
        assert world.prospect(email).bounced_at is not None
    with world.engine.connect() as conn:
        values = set(conn.execute(select(suppressions.c.value)).scalars())
    assert values == {ANN, BOB}


def test_blocked_is_a_soft_bounce(world: World):
    r = world.post_events([world.sg_event(ANN, "bounce", type="blocked")])
    assert r.json()["stored"] == 1 and r.json()["applied"] == 0
    assert world.events()[0].type == "blocked"
    assert world.enrollments_of(ANN)[0].state == "active"


@pytest.mark.parametrize("kind", ["unsubscribe", "spamreport", "group_unsubscribe"])
def test_opt_out_events_stop_every_cadence(world: World, tmp_path, kind: str):
    # A second cadence the same people are enrolled in.
    from tests.support.harness import SENDER, cadence_yaml

    second = make_cadence(tmp_path / "second", cadence_yaml("second-cadence", exit_on="reply"))
    runtime = world.harness.runtimes.add(second)
    with world.engine.begin() as conn:
        enroll(conn, runtime, None, owner_email="sdr@x.example", sender=SENDER, now=world.clock[0])
    assert len(world.enrollments_of(ANN)) == 2

    r = world.post_events([world.sg_event(ANN, kind)])
    assert r.json()["applied"] == 1
    assert {e.state for e in world.enrollments_of(ANN)} == {"opted_out"}
    assert world.prospect(ANN).opted_out_at is not None

    with world.engine.connect() as conn:
        before = conn.execute(select(touches.c.key)).scalars().all()
    # Three weeks of ticks over both cadences: nothing more for ANN, BOB goes on.
    h = world.harness
    at = world.clock[0]
    for _ in range(21):
        at += timedelta(days=1)
        h.tick(at.replace(hour=16))
        h.complete_due_tasks(at.replace(hour=16))
    ann = {e.id for e in world.enrollments_of(ANN)}
    bob = {e.id for e in world.enrollments_of(BOB)}
    with world.engine.connect() as conn:
        new = (
            conn.execute(select(touches.c.enrollment_id).where(touches.c.key.not_in(before)))
            .scalars()
            .all()
        )
    assert not ann & set(new)
    assert bob & set(new)


def test_malformed_events_do_not_sink_the_batch(world: World):
    good = [world.sg_event(ANN, "open"), world.sg_event(BOB, "bounce", type="bounce")]
    batch = [
        good[0],
        42,
        {"event": "open", "timestamp": 1},  # no sg_event_id
        {"sg_event_id": "x1", "event": "open", "timestamp": "yesterday"},
        {"sg_event_id": "x2", "event": "OPEN!", "timestamp": 1},
        {"sg_event_id": "x3", "event": "open", "timestamp": 1e300},
        None,
        good[1],
    ]
    r = world.post_events(batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stored"], body["malformed"], body["applied"]) == (2, 6, 1)
    assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4, 5, 6]
    assert world.enrollments_of(BOB)[0].state == "bounced"


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"{}", b'"text"', b"[1, 2, 3]", b"[{}]", b"\xff\xfe", b"[NaN]", b"[" * 100_000],
)
def test_bodies_that_are_not_event_arrays_are_refused(world: World, body: bytes):
    r = world.post_events(body)
    assert r.status_code == 400, r.text
    assert world.event_count() == 0


def test_empty_batch_is_fine(world: World):
    assert world.post_events([]).json()["stored"] == 0


def test_unmatched_events_are_stored_and_counted(world: World):
    stranger = world.sg_event(ANN, "delivered", touch_key="999-x-1")
    stranger["email"] = "nobody@else.example"
    by_email = world.sg_event(ANN, "delivered", touch_key=None)
    r = world.post_events([stranger, by_email]).json()
    assert (r["stored"], r["unmatched"]) == (2, 1)
    by_id = {e.provider_event_id: e for e in world.events()}
    assert by_id[f"sg:{stranger['sg_event_id']}"].prospect_id is None
    matched = by_id[f"sg:{by_email['sg_event_id']}"]
    assert (matched.prospect_id, matched.enrollment_id) == (world.prospect(ANN).id, None)


def test_hostile_strings_are_stored_safely(world: World):
    nul = world.sg_event(ANN, "open", sg_event_id="a\x00b", touch_key="k\x00", note="\x00")
    surrogate = json.dumps([nul]).replace('"note": "\\u0000"', '"note": "\\ud800"')
    long_id = world.sg_event(ANN, "open", sg_event_id="x" * 5000)
    r = world.post_events(surrogate.encode()[:-1] + b", " + json.dumps(long_id).encode() + b"]")
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 2
    assert PUBLIC_KEY  # the module-level key is what the app verifies with


def test_an_event_for_an_unknown_touch_settles_it_as_sent(world: World):
    # The intro to Ann timed out after the request went out: unknown, enrollment failed.
    key = world.touch(ANN).key
    with world.engine.begin() as conn:
        conn.execute(update(touches).where(touches.c.key == key).values(status="unknown"))
        conn.execute(
            update(enrollments)
            .where(enrollments.c.id == world.touch(ANN).enrollment_id)
            .values(state="failed", reason="delivery_unknown:intro", step_index=0, next_due_at=None)
        )
    r = world.post_events([world.sg_event(ANN, "processed"), world.sg_event(ANN, "delivered")])
    assert r.json()["reconciled"] == 1
    assert world.touch(ANN).status == "sent"
    (enr,) = world.enrollments_of(ANN)
    # On to the call step, two business days after the intro went out; nothing resent.
    assert (enr.state, enr.reason, enr.step_index) == ("active", None, 1)
    assert enr.next_due_at == datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    assert world.post_events([world.sg_event(ANN, "open")]).json()["reconciled"] == 0
