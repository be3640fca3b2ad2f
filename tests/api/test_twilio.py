"""Twilio webhooks: signatures, STOP/START/HELP, replies by text, status callbacks, the bridge."""

from __future__ import annotations

from sqlalchemy import select

from tests.api.conftest import PEOPLE, World, build_world
from touchflow.store.schema import suppressions

ANN, BOB, CY = PEOPLE
ANN_PHONE = "+12125550101"


def _sms(sid: str, body: str, sender: str = ANN_PHONE) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": "AC123",
        "From": sender,
        "To": "+12125550100",
        "Body": body,
        "NumMedia": "0",
    }


def _phone_suppressions(world: World) -> dict[str, str]:
    with world.engine.connect() as conn:
        rows = conn.execute(
            select(suppressions.c.value, suppressions.c.reason).where(
                suppressions.c.kind == "phone"
            )
        )
        return {value: reason for value, reason in rows}


def test_forged_or_missing_signature_is_refused_and_nothing_stored(world: World):
    params = _sms("SM1", "STOP")
    r = world.post_twilio("/webhooks/twilio/sms", params, token="not-the-token")
    assert r.status_code == 403
    assert world.client.post("/webhooks/twilio/sms", data=params).status_code == 403
    # Signed for other parameters: the body was changed on the way.
    r = world.post_twilio("/webhooks/twilio/sms", params)
    assert r.status_code == 200
    assert world.event_count() == 1
    sig = r.request.headers["X-Twilio-Signature"]
    r = world.client.post(
        "/webhooks/twilio/sms",
        data=_sms("SM2", "STOP"),
        headers={"X-Twilio-Signature": sig},
    )
    assert r.status_code == 403
    assert world.event_count() == 1
    for path in ("/webhooks/twilio/message-status", "/webhooks/twilio/call-status"):
        assert world.client.post(path, data={"MessageSid": "x"}).status_code == 403
    assert world.client.post("/twilio/voice/bridge/1", data={}).status_code == 403


def test_no_auth_token_configured_refuses_with_503(db, tmp_path):
    w = build_world(db, tmp_path, twilio={"auth_token": None})
    assert w.post_twilio("/webhooks/twilio/sms", _sms("SM1", "hi")).status_code == 503
    assert w.event_count() == 0


def test_stop_start_help(world: World):
    r = world.post_twilio("/webhooks/twilio/sms", _sms("SM1", "  stop \n"))
    assert r.status_code == 200
    assert "<Message>" in r.text and "unsubscribed" in r.text
    assert _phone_suppressions(world) == {ANN_PHONE: "sms_stop"}
    # Email goes on: the enrollment is untouched.
    assert world.enrollments_of(ANN)[0].state == "active"
    assert world.events()[-1].type == "sms_stop"
    assert world.events()[-1].prospect_id == world.prospect(ANN).id

    # Twilio retries the same message: no second answer.
    r = world.post_twilio("/webhooks/twilio/sms", _sms("SM1", "  stop \n"))
    assert r.status_code == 200 and "<Message>" not in r.text

    r = world.post_twilio("/webhooks/twilio/sms", _sms("SM2", "HELP"))
    assert "Reply STOP" in r.text
    assert _phone_suppressions(world) == {ANN_PHONE: "sms_stop"}

    r = world.post_twilio("/webhooks/twilio/sms", _sms("SM3", "Start"))
    assert "subscribed to texts again" in r.text
    assert _phone_suppressions(world) == {}
    assert [e.type for e in world.events()] == ["sms_stop", "sms_help", "sms_start"]


def test_other_text_is_a_reply(world: World):
    r = world.post_twilio("/webhooks/twilio/sms", _sms("SM9", "Sure, call me Thursday"))
    assert r.status_code == 200 and "<Message>" not in r.text
    enr = world.enrollments_of(ANN)[0]
    assert (enr.state, enr.reason) == ("finished", "replied")
    assert world.events()[-1].type == "sms_reply"
    assert world.enrollments_of(BOB)[0].state == "active"


def test_text_from_an_unknown_number_is_stored_unmatched(world: World):
    r = world.post_twilio("/webhooks/twilio/sms", _sms("SM9", "who is this", "+14155550199"))
    assert r.status_code == 200
    assert world.events()[-1].prospect_id is None


def test_message_status_21610_opts_the_number_out(world: World):
    def status(sid: str, state: str, code: str | None = None, to: str = ANN_PHONE):
        p = {"MessageSid": sid, "MessageStatus": state, "To": to, "From": "+12125550100"}
        if code:
            p["ErrorCode"] = code
        return world.post_twilio("/webhooks/twilio/message-status?touch_key=1-nudge-1", p)

    assert status("SM1", "sent").status_code == 204
    assert status("SM1", "delivered").status_code == 204
    assert status("SM1", "delivered").status_code == 204  # retried: stored once
    assert status("SM2", "undelivered", "21211", "+12125550102").status_code == 204
    assert _phone_suppressions(world) == {}
    assert status("SM3", "failed", "21610").status_code == 204
    assert _phone_suppressions(world) == {ANN_PHONE: "sms_stop"}
    types = [e.type for e in world.events()]
    assert types == ["sms_sent", "sms_delivered", "sms_undelivered", "sms_failed"]
    assert world.events()[0].touch_key == "1-nudge-1"
    r = world.post_twilio("/webhooks/twilio/message-status", {"To": ANN_PHONE})
    assert r.status_code == 400


def test_call_status_is_stored_against_the_task_touch(world: World, call_task):
    params = {"CallSid": "CA1", "CallStatus": "completed", "To": "+12125550177"}
    r = world.post_twilio(f"/webhooks/twilio/call-status?task_id={call_task.id}", params)
    assert r.status_code == 204
    ev = world.events()[-1]
    assert (ev.type, ev.touch_key) == ("call_completed", call_task.touch_key)
    assert ev.prospect_id == world.prospect(ANN).id


def test_a_call_status_with_a_nul_is_stored_without_it(world: World, call_task):
    """PostgreSQL refuses NUL in text: such a status answered 500 there (found by fuzzing)."""
    params = {"CallSid": "CA1", "CallStatus": "ring\x00ing"}
    r = world.post_twilio(f"/webhooks/twilio/call-status?task_id={call_task.id}", params)
    assert r.status_code == 204, r.text
    assert world.events()[-1].type == "call_ringing"


def test_bridge_dials_the_prospect(world: World, call_task):
    r = world.post_twilio(f"/twilio/voice/bridge/{call_task.id}", {"CallSid": "CA1"})
    assert r.status_code == 200
    assert "<Dial" in r.text and ANN_PHONE in r.text and 'callerId="+12125550100"' in r.text
    # Once the number is opted out, the bridge refuses.
    world.post_twilio("/webhooks/twilio/sms", _sms("SM1", "STOP"))
    r = world.post_twilio(f"/twilio/voice/bridge/{call_task.id}", {"CallSid": "CA2"})
    assert "<Dial" not in r.text and "<Hangup" in r.text


def test_a_text_reply_applies_the_account_rule(world: World, tmp_path):
    """A reply by text is a reply like any other: BOB's cadence pauses on an account reply.

    Before, a text reply ended ANN's enrollments but left colleagues untouched.
    """
    from datetime import timedelta

    from tests.support.harness import SENDER, cadence_yaml, make_cadence
    from touchflow.store.enrollments import enroll

    yaml = cadence_yaml("acct-pause").replace("exit_on:", "on_account_reply: pause\nexit_on:")
    runtime = world.harness.runtimes.add(make_cadence(tmp_path / "acct", yaml))
    with world.engine.begin() as conn:
        enroll(conn, runtime, None, owner_email="sdr@x.example", sender=SENDER, now=world.clock[0])
    r = world.post_twilio("/webhooks/twilio/sms", _sms("SM10", "Sure, call me Thursday"))
    assert r.status_code == 200
    bob = {e.cadence_id: e for e in world.enrollments_of(BOB)}
    assert bob["t-cadence"].state == "active"  # on_account_reply: continue (the default)
    assert (bob["acct-pause"].state, bob["acct-pause"].reason) == ("paused", "account_replied")
    assert bob["acct-pause"].next_due_at == world.clock[0] + timedelta(days=14)
    assert {e.state for e in world.enrollments_of(CY)} <= {"active", "pending"}
