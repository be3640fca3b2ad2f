"""SendGrid Inbound Parse: token, reply / out-of-office / unsubscribe, account rules, dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from tests.api.conftest import PARSE_TOKEN, PEOPLE, World, build_world
from tests.support.harness import SENDER, cadence_yaml, make_cadence
from touchflow.store.enrollments import enroll
from touchflow.store.schema import enrollments

ANN, BOB, CY = PEOPLE
URL = f"/webhooks/sendgrid/inbound?token={PARSE_TOKEN}"


def _parse_form(world: World, sender: str, text: str, **kw: Any) -> dict[str, str]:
    touch = world.touch(sender)
    in_reply_to = kw.pop("in_reply_to", touch.message_id)
    msg_id = kw.pop("message_id", f"<r{abs(hash(text))}@{sender.split('@')[1]}>")
    headers = (
        f"Received: by mx.example\nMessage-ID: {msg_id}\nIn-Reply-To: {in_reply_to}\n"
        f"References: {in_reply_to}\nSubject: Re: Hi\nFrom: Someone <{sender}>\n"
        + "".join(f"{k}: {v}\n" for k, v in kw.pop("headers", {}).items())
    )
    form = {
        "headers": headers,
        "from": kw.pop("from_", f"Someone <{sender}>"),
        "to": "Sam Rivera <sam@touchflow.example>",
        "subject": "Re: Hi",
        "text": text,
        "envelope": f'{{"to": ["sam@touchflow.example"], "from": "{sender}"}}',
        "charsets": '{"text": "utf-8"}',
    }
    form.update(kw)
    return form


def _post(world: World, form: dict[str, str], url: str = URL) -> Any:
    # Inbound Parse posts multipart/form-data.
    return world.client.post(url, files={k: (None, v) for k, v in form.items()})


def test_token_is_required(world: World):
    form = _parse_form(world, ANN, "Sounds good, let's talk.")
    assert _post(world, form, "/webhooks/sendgrid/inbound").status_code == 403
    assert _post(world, form, "/webhooks/sendgrid/inbound?token=wrong").status_code == 403
    assert world.event_count() == 0


def test_unconfigured_token_is_503(db, tmp_path):
    w = build_world(db, tmp_path, sendgrid={"inbound_parse_token": None})
    assert _post(w, _parse_form(w, ANN, "hi")).status_code == 503


def test_reply_ends_enrollment_and_applies_the_account_rule(world: World, tmp_path):
    # BOB (same account as ANN) is also in a cadence that pauses on an account reply,
    # CY (another account) too.
    yaml = cadence_yaml("acct-pause").replace("exit_on:", "on_account_reply: pause\nexit_on:")
    runtime = world.harness.runtimes.add(make_cadence(tmp_path / "acct", yaml))
    with world.engine.begin() as conn:
        enroll(conn, runtime, None, owner_email="sdr@x.example", sender=SENDER, now=world.clock[0])

    r = _post(world, _parse_form(world, ANN, "Sounds good. Can you do Thursday at 2pm?"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["kind"], body["matched_by"], body["ended"]) == ("reply", "in_reply_to", 2)
    assert body["account_paused"] == 1
    assert {(e.state, e.reason) for e in world.enrollments_of(ANN)} == {("finished", "replied")}
    bob = {e.cadence_id: e for e in world.enrollments_of(BOB)}
    assert bob["t-cadence"].state == "active"  # on_account_reply: continue (the default)
    paused = bob["acct-pause"]
    assert (paused.state, paused.reason) == ("paused", "account_replied")
    assert paused.next_due_at == world.clock[0] + timedelta(days=14)
    assert {e.state for e in world.enrollments_of(CY)} <= {"active", "pending"}
    ev = world.events()[0]
    assert (ev.type, ev.touch_key) == ("replied", world.touch(ANN).key)

    # The same message again (Inbound Parse retried): nothing more happens.
    r = _post(world, _parse_form(world, ANN, "Sounds good. Can you do Thursday at 2pm?"))
    assert r.json()["duplicate"] is True
    assert world.event_count() == 1


def test_account_rule_finish(world: World, tmp_path):
    yaml = cadence_yaml("acct-finish").replace("exit_on:", "on_account_reply: finish\nexit_on:")
    runtime = world.harness.runtimes.add(make_cadence(tmp_path / "acct", yaml))
    with world.engine.begin() as conn:
        enroll(conn, runtime, None, owner_email="sdr@x.example", sender=SENDER, now=world.clock[0])
    r = _post(world, _parse_form(world, ANN, "Interesting, tell me more."))
    assert r.json()["account_finished"] == 1
    bob = {e.cadence_id: e for e in world.enrollments_of(BOB)}
    assert (bob["acct-finish"].state, bob["acct-finish"].reason) == ("finished", "account_replied")


def test_out_of_office_pauses_until_the_return_date(world: World):
    text = "I am out of the office until 14 December 2026 with limited access to email."
    form = _parse_form(world, ANN, text, headers={"Auto-Submitted": "auto-replied"})
    form["subject"] = "Automatic reply: Hi"
    r = _post(world, form)
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "out_of_office" and r.json()["paused"] == 1
    enr = world.enrollments_of(ANN)[0]
    assert (enr.state, enr.reason) == ("paused", "out_of_office")
    # The classifier reads "until 14 December" as back on the 15th.
    assert enr.next_due_at == datetime(2026, 12, 15, tzinfo=UTC)
    assert enr.claimed_at is None
    # The tick resumes it once that date is due, not before.
    h = world.harness
    h.tick(datetime(2026, 12, 9, 15, tzinfo=UTC))
    assert world.enrollments_of(ANN)[0].state == "paused"


def test_out_of_office_without_a_date_pauses_for_the_default(world: World):
    form = _parse_form(world, BOB, "I am currently out of the office with limited access.")
    form["subject"] = "Out of office"
    r = _post(world, form)
    assert r.json()["kind"] == "out_of_office"
    enr = world.enrollments_of(BOB)[0]
    assert (enr.state, enr.next_due_at) == ("paused", world.clock[0] + timedelta(days=7))


def test_unsubscribe_request_opts_out(world: World):
    r = _post(world, _parse_form(world, CY, "Please remove me from your mailing list."))
    assert r.json()["kind"] == "unsubscribe"
    assert world.enrollments_of(CY)[0].state == "opted_out"
    assert world.prospect(CY).opted_out_at is not None


def test_matched_by_sender_when_the_thread_is_unknown(world: World):
    form = _parse_form(world, BOB, "Yes, interested.", in_reply_to="<unknown@elsewhere>")
    r = _post(world, form)
    assert r.json()["matched_by"] == "sender"
    assert world.enrollments_of(BOB)[0].state == "finished"


def test_unmatched_message_is_stored(world: World):
    form = _parse_form(world, BOB, "Who are you?", in_reply_to="<unknown@elsewhere>")
    form["from"] = "Stranger <stranger@nowhere.example>"
    form["headers"] = form["headers"].replace(BOB, "stranger@nowhere.example")
    r = _post(world, form)
    assert r.status_code == 200
    assert r.json()["matched"] is False
    assert world.events()[0].prospect_id is None
    assert world.enrollments_of(BOB)[0].state == "active"


def test_waiting_task_enrollments_are_not_paused(world: World):
    with world.engine.begin() as conn:
        conn.execute(update(enrollments).values(reason="waiting_task:call-1", next_due_at=None))
    form = _parse_form(world, ANN, "I am out of the office until 14 December 2026.")
    form["subject"] = "Automatic reply: Hi"
    assert _post(world, form).json()["paused"] == 0
    assert world.enrollments_of(ANN)[0].state == "active"


def test_raw_mime_variant(world: World):
    touch = world.touch(ANN)
    raw = (
        "From: Ann Lee <ann@acme.example>\r\nTo: sam@touchflow.example\r\n"
        "Subject: Re: Hi\r\nMessage-ID: <raw1@acme.example>\r\n"
        f"In-Reply-To: {touch.message_id}\r\nDate: Mon, 30 Nov 2026 16:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nLet's talk next week.\r\n"
    )
    r = _post(world, {"email": raw, "to": "sam@touchflow.example", "from": "ann@acme.example"})
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["matched_by"]) == ("reply", "in_reply_to")
    assert world.enrollments_of(ANN)[0].state == "finished"


def test_bad_forms_get_4xx(world: World):
    assert _post(world, {"text": "no sender anywhere"}).status_code == 400
    r = world.client.post(URL, content=b"\x00\xff garbage", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    r = world.client.post(
        URL, content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert 400 <= r.status_code < 500
    assert world.event_count() == 0
