"""After an opt-out arrives by any channel, no touch of any cadence goes to that person."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.api.conftest import PARSE_TOKEN, PEOPLE, UNSUB_SECRET, World
from tests.support.harness import SENDER, cadence_yaml, make_cadence
from touchflow.domain.unsubscribe import sign
from touchflow.store.enrollments import enroll
from touchflow.store.schema import touches
from touchflow.store.suppressions import add_suppression

ANN, BOB, _ = PEOPLE
ANN_PHONE = "+12125550101"


def _link(world: World) -> None:
    token = sign(world.touch(ANN).key, UNSUB_SECRET)
    r = world.client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200


def _sendgrid(kind: str) -> Callable[[World], None]:
    def send(world: World) -> None:
        assert world.post_events([world.sg_event(ANN, kind)]).json()["applied"] == 1

    return send


def _reply_asking_to_be_removed(world: World) -> None:
    msg_id = world.touch(ANN).message_id
    form = {
        "headers": f"Message-ID: <rm@acme.example>\nIn-Reply-To: {msg_id}\nFrom: <{ANN}>\n",
        "from": f"Ann <{ANN}>",
        "to": SENDER.email,
        "subject": "Re: Hi",
        "text": "Please remove me from your list.",
    }
    r = world.client.post(
        f"/webhooks/sendgrid/inbound?token={PARSE_TOKEN}",
        files={k: (None, v) for k, v in form.items()},
    )
    assert r.status_code == 200, r.text


def _operator(world: World) -> None:
    with world.engine.begin() as conn:
        add_suppression(
            conn, "email", ANN, reason="asked by phone", source="cli", now=world.clock[0]
        )


def _domain(world: World) -> None:
    with world.engine.begin() as conn:
        add_suppression(conn, "domain", "acme.example", reason="customer", source="cli",
                        now=world.clock[0])  # fmt: skip


CHANNELS = {
    "unsubscribe-link": _link,
    "sendgrid-unsubscribe": _sendgrid("unsubscribe"),
    "sendgrid-spamreport": _sendgrid("spamreport"),
    "reply-remove-me": _reply_asking_to_be_removed,
    "suppressed-email": _operator,
    "suppressed-domain": _domain,
}


def _second_cadence(world: World, tmp_path) -> None:
    second = make_cadence(tmp_path / "second", cadence_yaml("second-cadence", exit_on="reply"))
    with world.engine.begin() as conn:
        runtime = world.harness.runtimes.add(second)
        enroll(conn, runtime, None, owner_email="sdr@x.example", sender=SENDER, now=world.clock[0])


def _three_weeks(world: World) -> set[tuple[str, str]]:
    """Tick daily for three weeks (tasks done as they come); (email, channel) of new touches."""
    from touchflow.store.schema import enrollments, prospects

    with world.engine.connect() as conn:
        before = set(conn.execute(select(touches.c.key)).scalars())
    at = world.clock[0]
    for _ in range(21):
        at += timedelta(days=1)
        world.harness.tick(at.replace(hour=16))
        world.harness.complete_due_tasks(at.replace(hour=16))
    q = (
        select(touches.c.key, prospects.c.email, touches.c.channel, touches.c.status)
        .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
        .join(prospects, prospects.c.id == enrollments.c.prospect_id)
    )
    with world.engine.connect() as conn:
        return {
            (email, channel)
            for key, email, channel, status in conn.execute(q)
            if key not in before and status == "sent"
        }


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_no_touch_of_any_cadence_after_an_opt_out(world: World, tmp_path, channel: str):
    _second_cadence(world, tmp_path)
    CHANNELS[channel](world)
    new = _three_weeks(world)
    assert not {c for e, c in new if e == ANN}, f"{ANN} was contacted after opting out"
    if channel == "suppressed-domain":  # Bob works at Acme too
        assert not {c for e, c in new if e == BOB}
    else:
        assert {"email", "sms"} <= {c for e, c in new if e == BOB}


def test_sms_stop_ends_texts_everywhere_but_not_email(world: World, tmp_path):
    _second_cadence(world, tmp_path)
    params = {
        "From": ANN_PHONE,
        "To": "+12125550100",
        "Body": "STOP",
        "MessageSid": "SM" + "2" * 32,
    }
    assert world.post_twilio("/webhooks/twilio/sms", params).status_code == 200
    new = _three_weeks(world)
    ann = {c for e, c in new if e == ANN}
    assert "sms" not in ann and "email" in ann
