"""A cadence with email, SMS, call and LinkedIn steps, end to end over real protocols.

Email goes through SendGrid (the official library against the local stand-in)
or a rep's SMTP mailbox (a real SMTP server); texts and the click-to-call go
through Twilio (the official library against its stand-in); replies arrive in
the rep's mailbox on a real IMAP server (Dovecot); webhooks are signed and
posted to the API. Then a reply, a bounce, an out-of-office, a STOP and an
unsubscribe click each do what they should, and nobody hears from us again
after opting out.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from tests.support.harness import TEMPLATES, Harness, make_cadence, prospect
from tests.support.imap_server import DovecotServer, dovecot_server
from tests.support.standins.sendgrid_api import SendgridStandin
from tests.support.standins.twilio_api import TwilioStandin
from touchflow.adapters.imap.replies import ImapMailbox
from touchflow.adapters.sendgrid.email_sender import SendgridEmailSender
from touchflow.adapters.smtp.email_sender import SmtpEmailSender
from touchflow.adapters.smtp.sink import LocalSmtpSink
from touchflow.adapters.twilio.sms_voice import TwilioSmsSender
from touchflow.entrypoints.api import create_app
from touchflow.services.replies import poll_mailbox
from touchflow.settings import Settings
from touchflow.store.schema import touches
from touchflow.store.tasks import list_tasks

MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
PUBLIC_URL = "https://hooks.touchflow.example"
TWILIO_NUMBER = "+12125550100"
SDR_PHONE = "+12125550199"
REP, REP_PASSWORD = "sam@touchflow.example", "imap-pw"
API_KEY = "e2e-api-key"

CADENCE = """\
id: full-stack
name: Full stack
on_account_reply: pause
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
  holidays: none
exit_on: [reply, bounce, unsubscribe, meeting_booked]
steps:
  - id: intro
    channel: email
    subject: "Pipeline at {{ prospect.company }}"
    template: email/intro.txt.j2
  - id: text
    after: 1 hour
    channel: sms
    template: sms/nudge.txt.j2
  - id: call
    after: 1 business day
    channel: call
    template: call/script.md.j2
  - id: connect
    channel: linkedin
    template: linkedin/connect.txt.j2
  - id: text-2
    channel: sms
    template: sms/nudge.txt.j2
  - id: bump
    after: 1 business day
    channel: email
    thread: intro
    template: email/bump.txt.j2
"""

PEOPLE = {
    "ann@acme.example": "+12125550101",  # replies
    "abe@acme.example": "+12125550102",  # her colleague: the account rule pauses him
    "bo@bounce.example": "+12125550103",  # bounces
    "oli@ooo.example": "+12125550104",  # out of office until 7 December
    "sam@stop.example": "+12125550105",  # texts STOP
    "una@unsub.example": "+12125550106",  # clicks unsubscribe
    "hap@happy.example": "+12125550107",  # goes through every step
}


@dataclass
class Stack:
    transport: str
    h: Harness
    api: TestClient
    sendgrid: SendgridStandin | None
    smtp: LocalSmtpSink | None
    twilio: TwilioStandin
    dovecot: DovecotServer
    sg_key: ec.EllipticCurvePrivateKey

    # -- what the providers saw ------------------------------------------------
    def emails(self) -> list[dict[str, Any]]:
        """Every accepted email as {to, subject, headers} (SendGrid JSON or SMTP MIME)."""
        out = []
        if self.sendgrid is not None:
            for m in self.sendgrid.messages:
                p = m.body["personalizations"][0]
                headers = {**m.body.get("headers", {}), **p.get("headers", {})}
                out.append({"to": p["to"][0]["email"], "headers": headers})
        else:
            for m in self.smtp.messages:
                msg = m.parse()
                out.append({"to": msg["To"], "headers": {k: str(v) for k, v in msg.items()}})
        return out

    def emails_to(self, address: str) -> list[dict[str, Any]]:
        return [e for e in self.emails() if address in e["to"]]

    def texts_to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.twilio.messages if m["to"] == number]

    # -- webhooks ----------------------------------------------------------------
    def sendgrid_event(self, touch_key: str, email: str, event: str, **extra: Any) -> Any:
        item = {"email": email, "event": event, "timestamp": int(MON.timestamp()),
                "sg_event_id": f"{touch_key}-{event}", "touch_key": touch_key, **extra}  # fmt: skip
        body = json.dumps([item]).encode()
        ts = str(int(self.now().timestamp()))
        sig = self.sg_key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return self.api.post(
            "/webhooks/sendgrid/events",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Timestamp": ts,
                "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
            },
        )

    def twilio_post(self, path: str, params: dict[str, str]) -> Any:
        sig = RequestValidator(self.twilio.auth_token).compute_signature(PUBLIC_URL + path, params)
        return self.api.post(path, data=params, headers={"X-Twilio-Signature": sig})

    clock: list[datetime] | None = None

    def now(self) -> datetime:
        assert self.clock is not None
        return self.clock[0]

    def tick(self, at: datetime) -> Any:
        self.clock[0] = at
        return self.h.tick(at)


@pytest.fixture(params=["sendgrid", "smtp"])
def stack(request: pytest.FixtureRequest, db: Engine, tmp_path: Any) -> Iterator[Stack]:
    transport = request.param
    dovecot = dovecot_server({REP: REP_PASSWORD})  # skips without dovecot, fails in CI
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    templates = {
        **TEMPLATES,
        "linkedin/connect.txt.j2": "Hi {{ prospect.first_name }}, connecting re pipeline.",
    }
    cadence = make_cadence(tmp_path, CADENCE, templates)
    with dovecot, TwilioStandin() as twilio:
        sg = SendgridStandin() if transport == "sendgrid" else None
        smtp = LocalSmtpSink(reject_rcpt=["bo@bounce.example"]) if sg is None else None
        (sg or smtp).start()
        try:
            email = (
                SendgridEmailSender(sg.api_key, host=sg.url, timeout_s=5)
                if sg
                else SmtpEmailSender(smtp.host, smtp.port, timeout=5)
            )
            sms = TwilioSmsSender(
                twilio.account_sid,
                twilio.auth_token,
                base_url=twilio.base_url,
                status_callback_url=f"{PUBLIC_URL}/webhooks/twilio/message-status",
                timeout_s=5,
            )
            h = Harness(db, cadence, email=email, sms=sms, sms_from=TWILIO_NUMBER)
            settings = Settings(
                _env_file=None,
                public_url=PUBLIC_URL,
                api_key=API_KEY,
                sendgrid={"webhook_public_key": public},
                twilio={
                    "account_sid": twilio.account_sid,
                    "auth_token": twilio.auth_token,
                    "from_number": TWILIO_NUMBER,
                },
            )
            clock = [MON]
            app = create_app(
                settings, engine=db, runtimes=h.runtimes, dialer=sms, clock=lambda: clock[0]
            )
            s = Stack(transport, h, TestClient(app), sg, smtp, twilio, dovecot, key)
            s.clock = clock
            yield s
            email.close()
            sms.close()
        finally:
            (sg or smtp).stop()


def _reply_to(stack: Stack, sender: str, original: dict[str, Any], subject: str, body: str,
              **headers: str) -> None:  # fmt: skip
    """A message from ``sender`` answering ``original``, delivered to the rep's IMAP inbox."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = REP
    msg["Subject"] = subject
    msg["Date"] = format_datetime(stack.now() + timedelta(minutes=20))
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    msg["In-Reply-To"] = original["headers"]["Message-ID"]
    msg["References"] = original["headers"]["Message-ID"]
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    stack.dovecot.append(REP, msg.as_bytes())


def _touch(stack: Stack, email: str, step: str) -> Any:
    from touchflow.store.schema import enrollments, prospects

    with stack.h.engine.connect() as conn:
        return conn.execute(
            select(touches)
            .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
            .join(prospects, prospects.c.id == enrollments.c.prospect_id)
            .where(prospects.c.email == email, touches.c.step_id == step)
        ).one_or_none()


def _state(stack: Stack, email: str) -> tuple[str, str | None]:
    e = stack.h.enrollment(email)
    return e.state, e.reason


def test_every_channel_and_every_way_out(stack: Stack):
    h = stack.h
    h.add(
        [
            prospect(email, phone=phone, domain=email.split("@")[1], first_name=email[:3].title())
            for email, phone in PEOPLE.items()
        ],
        MON - timedelta(days=1),
    )

    # Monday 10:00: seven intros; the bounce is refused by SMTP, or reported by SendGrid.
    report = stack.tick(MON)
    assert report.sent == (7 if stack.transport == "sendgrid" else 6)
    if stack.transport == "sendgrid":
        r = stack.sendgrid_event(_touch(stack, "bo@bounce.example", "intro").key,
                                 "bo@bounce.example", "bounce", type="bounce")  # fmt: skip
        assert r.status_code == 200 and r.json()["applied"] == 1
    assert _state(stack, "bo@bounce.example") == ("bounced", "bounced")

    # Ann answers, Oli's auto-reply says he is away, both in the rep's mailbox (IMAP).
    _reply_to(stack, "ann@acme.example", stack.emails_to("ann@acme.example")[0],
              "Re: Pipeline at Acme", "Sounds interesting, can we talk Thursday?")  # fmt: skip
    _reply_to(
        stack,
        "oli@ooo.example",
        stack.emails_to("oli@ooo.example")[0],
        "Abwesenheitsnotiz: Pipeline at Acme",
        "Vielen Dank für Ihre Nachricht. Ich bin bis zum 4. Dezember nicht im Büro und ab "
        "dem 07.12.2026 wieder erreichbar.",
        Auto_Submitted="auto-replied",
    )
    # Una clicks the one-click unsubscribe link from her email's List-Unsubscribe header.
    header = stack.emails_to("una@unsub.example")[0]["headers"]["List-Unsubscribe"]
    url = next(p.strip(" <>") for p in header.split(",") if "/unsubscribe/" in p)
    assert stack.emails_to("una@unsub.example")[0]["headers"]["List-Unsubscribe-Post"] == (
        "List-Unsubscribe=One-Click"
    )
    r = stack.api.post(urlsplit(url).path, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 200

    with ImapMailbox(stack.dovecot.host, stack.dovecot.port, REP, REP_PASSWORD) as mailbox:
        counts = poll_mailbox(mailbox, h.engine, h.runtimes, now=MON + timedelta(minutes=30))
        assert counts == {"reply": 1, "out_of_office": 1}
        again = poll_mailbox(mailbox, h.engine, h.runtimes, now=MON + timedelta(minutes=31))
        assert not again  # moved to the processed folder: handled once
    assert _state(stack, "ann@acme.example") == ("finished", "replied")
    assert _state(stack, "abe@acme.example") == ("paused", "account_replied")
    oli = h.enrollment("oli@ooo.example")
    assert (oli.state, oli.reason) == ("paused", "out_of_office")
    assert oli.next_due_at == datetime(2026, 12, 7, tzinfo=UTC)
    assert _state(stack, "una@unsub.example") == ("opted_out", "unsubscribed")

    # 11:00: texts go to the two still running (Sam, Hap) through Twilio.
    stack.tick(MON + timedelta(hours=1))
    assert {m["to"] for m in stack.twilio.messages} == {PEOPLE["sam@stop.example"],
                                                        PEOPLE["hap@happy.example"]}  # fmt: skip
    assert {m["from"] for m in stack.twilio.messages} == {TWILIO_NUMBER}
    stop = {"From": PEOPLE["sam@stop.example"], "To": TWILIO_NUMBER, "Body": " stop "}
    r = stack.twilio_post("/webhooks/twilio/sms", {**stop, "MessageSid": "SM" + "1" * 32})
    assert r.status_code == 200

    # Tuesday: call tasks; Hap's SDR clicks to call (Twilio rings the SDR, then bridges).
    tue = MON + timedelta(days=1, hours=1)  # one business day after the text
    report = stack.tick(tue)
    assert report.tasks == 2
    with h.engine.connect() as conn:
        calls = {t.email: t.id for t in list_tasks(conn) if t.channel == "call"}
    task_id = calls["hap@happy.example"]
    r = stack.api.post(
        f"/tasks/{task_id}/call", json={"agent_number": SDR_PHONE}, headers={"X-API-Key": API_KEY}
    )
    assert r.status_code == 200, r.text
    (call,) = stack.twilio.calls
    assert call["to"] == SDR_PHONE and call["from"] == TWILIO_NUMBER
    bridge = f"/twilio/voice/bridge/{calls['hap@happy.example']}"
    twiml = stack.twilio_post(bridge, {"CallSid": call["sid"], "From": TWILIO_NUMBER}).text
    assert f"<Number>{PEOPLE['hap@happy.example']}</Number>" in twiml
    h.complete_due_tasks(tue + timedelta(hours=1), outcome="connected")
    # LinkedIn tasks right after, then the second text (skipped for Sam, who said STOP).
    stack.tick(tue + timedelta(hours=1))
    h.complete_due_tasks(tue + timedelta(hours=2))
    stack.tick(tue + timedelta(hours=2))
    assert len(stack.texts_to(PEOPLE["hap@happy.example"])) == 2
    assert len(stack.texts_to(PEOPLE["sam@stop.example"])) == 1
    assert _touch(stack, "sam@stop.example", "text-2").error == "sms_opted_out"

    # Wednesday: the threaded bump for Sam and Hap; email still reaches Sam.
    stack.tick(tue + timedelta(days=1, hours=2))
    for who in ("sam@stop.example", "hap@happy.example"):
        intro, bump = stack.emails_to(who)
        assert bump["headers"]["In-Reply-To"] == intro["headers"]["Message-ID"]
        assert _state(stack, who) == ("finished", "completed")

    # Oli is back on Monday 7 December: his cadence resumes with the text.
    stack.tick(datetime(2026, 12, 7, 15, 0, tzinfo=UTC))
    assert len(stack.texts_to(PEOPLE["oli@ooo.example"])) == 1
    assert _state(stack, "oli@ooo.example") == ("active", None)

    # Nobody who replied, bounced or opted out heard from us after that.
    refused = stack.transport == "smtp"  # the SMTP server refused Bo's only message
    for who in ("ann@acme.example", "bo@bounce.example", "una@unsub.example"):
        assert len(stack.emails_to(who)) == (0 if refused and who.startswith("bo@") else 1)
        assert not stack.texts_to(PEOPLE[who])


def test_429_then_500_then_202_sends_exactly_once(db: Engine, tmp_path: Any):
    """Through the tick and the real SendGrid library: two failures, then one message."""
    cadence = make_cadence(tmp_path, CADENCE, {**TEMPLATES, "linkedin/connect.txt.j2": "Hi"})
    with SendgridStandin() as sg:
        sender = SendgridEmailSender(sg.api_key, host=sg.url, timeout_s=5)
        h = Harness(db, cadence, email=sender)
        h.add([prospect("ann@acme.example")], MON - timedelta(days=1))
        sg.fail_next(429, retry_after=1800)
        sg.fail_next(500)
        first = h.tick(MON)
        assert first.retrying == 1
        e = h.enrollment("ann@acme.example")
        assert e.reason.startswith("retrying:sendgrid.") and "429" in e.reason
        assert e.next_due_at == MON + timedelta(minutes=30)  # Retry-After beat the backoff
        assert h.tick(e.next_due_at).retrying == 1  # the 500
        e = h.enrollment("ann@acme.example")
        assert e.reason.startswith("retrying:sendgrid.") and "500" in e.reason
        assert h.tick(e.next_due_at).sent == 1
        sender.close()
        assert len(sg.messages) == 1
        assert sg.messages[0].custom_args["touch_key"].endswith("-intro-3")
