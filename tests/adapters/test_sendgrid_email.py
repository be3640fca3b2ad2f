"""SendgridEmailSender: the real sendgrid library over real HTTP against the local stand-in."""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.standins.openapi import RequestSchema
from tests.support.standins.sendgrid_api import DEFAULT_API_KEY, SendgridStandin
from touchflow.adapters.sendgrid.email_sender import SendgridEmailSender, _retry_after, build_mail
from touchflow.errors import (
    ConfigError,
    ConnectorError,
    DeliveryUnknown,
    FatalError,
    RateLimited,
    RetryableError,
)
from touchflow.ports import OutboundEmail

MakeEmail = Callable[..., OutboundEmail]

FAST_TIMEOUT_S = 0.5


@pytest.fixture
def standin() -> Iterator[SendgridStandin]:
    with SendgridStandin() as running:
        yield running


@pytest.fixture
def sender(standin: SendgridStandin) -> Iterator[SendgridEmailSender]:
    with SendgridEmailSender(
        DEFAULT_API_KEY, host=standin.url, timeout_s=FAST_TIMEOUT_S, concurrency=4
    ) as s:
        yield s


@pytest.fixture
def serial(standin: SendgridStandin) -> Iterator[SendgridEmailSender]:
    """One request at a time, so scripted outcomes meet messages in batch order."""
    with SendgridEmailSender(
        DEFAULT_API_KEY, host=standin.url, timeout_s=FAST_TIMEOUT_S, concurrency=1
    ) as s:
        yield s


def full_email(make_email: MakeEmail, n: int = 1, **overrides: Any) -> OutboundEmail:
    fields: dict[str, Any] = {
        "in_reply_to": "<touch-0.abc@mail.acme.test>",
        "references": ("<root.abc@mail.acme.test>", "<touch-0.abc@mail.acme.test>"),
        "list_unsubscribe_url": "https://app.acme.test/u/tok-123",
        "list_unsubscribe_mailto": "unsubscribe@acme.test",
        "categories": ("enterprise-outbound", "step-2"),
        "headers": {"X-Campaign": "q3"},
    }
    fields.update(overrides)
    return make_email(n, **fields)


def _only_error(result: Any) -> ConnectorError:
    assert not result.ok, result
    assert result.error is not None
    # Vendor types never leave the connector: ours, raised from theirs.
    assert type(result.error).__module__ == "touchflow.errors"
    return result.error


# -- the request -----------------------------------------------------------


def test_request_is_valid_and_carries_touch_metadata(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    msg = full_email(make_email)
    [result] = sender.send_batch([msg])

    assert result.ok, result.error
    [received] = standin.messages
    assert result.provider_id == received.x_message_id
    body = received.body
    assert RequestSchema("sendgrid/tsg_mail_v3.json", "SendMail").errors(body) == []
    assert standin.rejected == 0
    assert received.headers["Authorization"] == f"Bearer {DEFAULT_API_KEY}"

    assert body["from"] == {"email": "rep@acme.test", "name": "Rita Rep"}
    assert body["personalizations"][0]["to"] == [{"email": msg.to_addr}]
    assert body["subject"] == msg.subject
    assert body["content"] == [{"type": "text/plain", "value": msg.text}]
    assert received.custom_args == {"touch_key": msg.touch_key, "message_id": msg.message_id}
    assert sorted(body["categories"]) == ["enterprise-outbound", "step-2"]
    headers = body["headers"]
    assert headers["Message-ID"] == msg.message_id
    assert headers["In-Reply-To"] == "<touch-0.abc@mail.acme.test>"
    assert headers["References"] == "<root.abc@mail.acme.test> <touch-0.abc@mail.acme.test>"
    assert headers["List-Unsubscribe"] == (
        "<https://app.acme.test/u/tok-123>, <mailto:unsubscribe@acme.test>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["X-Touchflow-Touch"] == msg.touch_key
    assert headers["X-Campaign"] == "q3"
    assert "mail_settings" not in body
    assert "asm" not in body


def test_minimal_message_has_no_optional_headers(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    [result] = sender.send_batch([make_email(1, from_name=None)])

    assert result.ok, result.error
    body = standin.bodies[0]
    assert body["from"] == {"email": "rep@acme.test"}
    assert set(body["headers"]) == {"Message-ID", "X-Touchflow-Touch"}
    assert "categories" not in body


def test_mailto_only_unsubscribe_is_not_one_click(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    sender.send_batch([make_email(1, list_unsubscribe_mailto="mailto:u@acme.test")])

    headers = standin.bodies[0]["headers"]
    assert headers["List-Unsubscribe"] == "<mailto:u@acme.test>"
    assert "List-Unsubscribe-Post" not in headers


def test_duplicate_categories_are_sent_once(make_email: MakeEmail) -> None:
    body = build_mail(make_email(1, categories=("same", "same"))).get()
    assert body["categories"] == ["same"]


def test_sandbox_mode_and_asm_group(standin: SendgridStandin, make_email: MakeEmail) -> None:
    with SendgridEmailSender(
        DEFAULT_API_KEY,
        host=standin.url,
        sandbox_mode=True,
        asm_group_id=42,
        timeout_s=FAST_TIMEOUT_S,
    ) as sandboxed:
        [result] = sandboxed.send_batch([make_email()])

    assert result.ok, result.error  # SendGrid answers 200 in sandbox mode
    [received] = standin.messages
    assert received.sandbox
    assert received.body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert received.body["asm"] == {"group_id": 42}
    assert standin.rejected == 0


# -- outcomes --------------------------------------------------------------


def test_429_retry_after_is_honoured(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    standin.fail_next(429, retry_after=7)
    error = _only_error(sender.send_batch([make_email()])[0])

    assert isinstance(error, RateLimited)
    assert error.retry_after == 7
    assert error.status == 429
    assert "too many requests" in str(error)
    assert standin.messages == []


def test_429_rate_limit_reset_epoch_becomes_a_delay(
    standin: SendgridStandin, make_email: MakeEmail
) -> None:
    standin.fail_next(429, rate_limit_reset=1_700_000_030)
    with SendgridEmailSender(
        DEFAULT_API_KEY, host=standin.url, timeout_s=FAST_TIMEOUT_S, clock=lambda: 1_700_000_000.5
    ) as s:
        error = _only_error(s.send_batch([make_email()])[0])

    assert isinstance(error, RateLimited)
    assert error.retry_after == 30  # rounded up: never retry early


def test_429_retry_after_http_date(standin: SendgridStandin, make_email: MakeEmail) -> None:
    now = 1_700_000_000.0
    standin.fail_next(429)
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert _retry_after({"Retry-After": date}, now) == pytest.approx(12)
    assert _retry_after({}, now) is None
    with SendgridEmailSender(DEFAULT_API_KEY, host=standin.url, timeout_s=FAST_TIMEOUT_S) as s:
        error = _only_error(s.send_batch([make_email()])[0])
    assert isinstance(error, RateLimited)
    assert error.retry_after is None  # no header at all: the caller picks its backoff


def test_500_is_retryable(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    standin.fail_next(500)
    error = _only_error(sender.send_batch([make_email()])[0])

    assert type(error) is RetryableError
    assert error.status == 500
    assert error.connector == "sendgrid"
    assert error.__cause__ is not None


def test_400_is_fatal_with_sendgrid_error_text(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    standin.fail_next(400, message="The from email does not contain a valid address.")
    error = _only_error(sender.send_batch([make_email()])[0])

    assert isinstance(error, FatalError)
    assert error.status == 400
    assert "The from email does not contain a valid address." in str(error)


def test_403_unverified_sender_is_fatal(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    standin.fail_next(403)
    error = _only_error(sender.send_batch([make_email()])[0])

    assert isinstance(error, FatalError)
    assert "verified Sender Identity" in str(error)


def test_spec_violation_comes_back_as_fatal_with_field(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    [result] = sender.send_batch([make_email(1, text="")])  # content value: minLength 1

    error = _only_error(result)
    assert isinstance(error, FatalError)
    assert error.status == 400
    assert "content/0/value" in str(error)
    assert standin.rejected == 1


def test_401_wrong_key_is_fatal(standin: SendgridStandin, make_email: MakeEmail) -> None:
    with SendgridEmailSender("SG.wrong", host=standin.url, timeout_s=FAST_TIMEOUT_S) as s:
        error = _only_error(s.send_batch([make_email()])[0])

    assert isinstance(error, FatalError)
    assert error.status == 401
    assert "authorization grant is invalid" in str(error)
    assert standin.messages == []


def test_timeout_after_accept_is_delivery_unknown_and_sent_once(
    standin: SendgridStandin, make_email: MakeEmail
) -> None:
    standin.fail_next("timeout", delay_s=FAST_TIMEOUT_S * 4)
    with SendgridEmailSender(DEFAULT_API_KEY, host=standin.url, timeout_s=0.2) as s:
        error = _only_error(s.send_batch([make_email()])[0])

    assert isinstance(error, DeliveryUnknown)
    assert len(standin.messages) == 1  # accepted at the provider, and only once
    assert standin.requests == 1


def test_connection_dropped_after_accept_is_delivery_unknown(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    standin.fail_next("drop")
    error = _only_error(sender.send_batch([make_email()])[0])

    assert isinstance(error, DeliveryUnknown)
    assert len(standin.messages) == 1


def test_connection_refused_is_retryable(closed_port: int, make_email: MakeEmail) -> None:
    with SendgridEmailSender(
        DEFAULT_API_KEY, host=f"http://127.0.0.1:{closed_port}", timeout_s=FAST_TIMEOUT_S
    ) as s:
        results = s.send_batch([make_email(1), make_email(2)])

    for result in results:
        error = _only_error(result)
        assert type(error) is RetryableError
        assert "not sent" in str(error)


def test_unknown_host_is_retryable(make_email: MakeEmail) -> None:
    with SendgridEmailSender(
        DEFAULT_API_KEY, host="http://no-such-host.invalid", timeout_s=FAST_TIMEOUT_S
    ) as s:
        error = _only_error(s.send_batch([make_email()])[0])

    assert type(error) is RetryableError


def test_bad_header_fails_that_message_before_sending(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    [result] = sender.send_batch([make_email(1, headers={"Message-ID": "<other@x>"})])

    error = _only_error(result)
    assert isinstance(error, FatalError)
    assert error.operation == "build"
    assert standin.requests == 0


# -- batches ---------------------------------------------------------------


def test_mixed_batch_one_result_per_message_in_order(
    standin: SendgridStandin, serial: SendgridEmailSender, make_email: MakeEmail
) -> None:
    standin.fail_next(429, retry_after=2)
    standin.fail_next(500)
    messages = [make_email(n) for n in range(1, 6)]
    messages.insert(2, make_email(99, headers={"bad name": "x"}))  # fails before any request
    messages.append(make_email(7, text=""))  # the stand-in's spec check refuses it

    results = serial.send_batch(messages)

    assert [r.touch_key for r in results] == [m.touch_key for m in messages]
    kinds = [type(r.error).__name__ if r.error else "ok" for r in results]
    assert kinds == ["RateLimited", "RetryableError", "FatalError", "ok", "ok", "ok", "FatalError"]
    accepted = [m.custom_args["touch_key"] for m in standin.messages]
    assert accepted == [m.touch_key for m in messages[3:6]]
    assert [r.provider_id for r in results[3:6]] == [m.x_message_id for m in standin.messages]


def test_concurrent_batch_keeps_order(standin: SendgridStandin, make_email: MakeEmail) -> None:
    messages = [make_email(n) for n in range(40)]
    messages[5] = make_email(5, headers={"To": "x@y"})  # build error, deterministic
    messages[17] = make_email(17, text="")  # 400 from the stand-in, deterministic
    with SendgridEmailSender(DEFAULT_API_KEY, host=standin.url, timeout_s=2.0, concurrency=8) as s:
        results = s.send_batch(messages)
        again = s.send_batch(messages[:3])  # the pool is reused across batches

    assert [r.touch_key for r in results] == [m.touch_key for m in messages]
    assert [i for i, r in enumerate(results) if not r.ok] == [5, 17]
    assert all(r.ok for r in again)
    first_batch = standin.messages[:38]  # the second batch arrived after all of these
    by_touch = {m.custom_args["touch_key"]: m.x_message_id for m in first_batch}
    assert len(by_touch) == 38
    assert len(standin.messages) == 41
    assert all(by_touch[r.touch_key] == r.provider_id for r in results if r.ok)


def test_429_then_500_then_202_accepts_the_message_once(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    standin.fail_next(429, retry_after=1)
    standin.fail_next(500)
    msg = make_email()

    first = sender.send_batch([msg])[0]
    second = sender.send_batch([msg])[0]
    third = sender.send_batch([msg])[0]

    assert isinstance(first.error, RateLimited)
    assert type(second.error) is RetryableError
    assert third.ok
    assert standin.requests == 3
    [accepted] = standin.messages
    assert accepted.custom_args["touch_key"] == msg.touch_key
    assert third.provider_id == accepted.x_message_id


def test_empty_batch_sends_nothing(standin: SendgridStandin, sender: SendgridEmailSender) -> None:
    assert sender.send_batch([]) == []
    assert standin.requests == 0


# -- the stand-in itself ---------------------------------------------------


def test_standin_rejects_an_invalid_body(standin: SendgridStandin) -> None:
    body = {
        "personalizations": [{"to": [{"name": "no address"}]}],
        "subject": "hi",
        "content": [{"type": "text/plain", "value": "x"}],
        "categories": ["a"] * 11,
    }  # no "from", a recipient without email, too many and repeated categories
    response = httpx.post(
        f"{standin.url}/v3/mail/send",
        json=body,
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert all(set(e) == {"message", "field", "help"} for e in errors)
    text = json.dumps(errors)
    assert "'from' is a required property" in text
    assert "'email' is a required property" in text
    assert "categories" in text
    assert standin.messages == []
    assert standin.rejected == 1


def test_standin_requires_the_bearer_key(standin: SendgridStandin) -> None:
    response = httpx.post(f"{standin.url}/v3/mail/send", json={})

    assert response.status_code == 401
    assert response.json()["errors"][0]["message"]
    assert standin.requests == 0


def test_standin_keeps_connections_alive(standin: SendgridStandin, make_email: MakeEmail) -> None:
    body = build_mail(make_email()).get()
    auth = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    with httpx.Client(base_url=standin.url, headers=auth) as client:
        first = client.post("/v3/mail/send", json=body)
        second = client.post("/v3/mail/send", json=body)
        missing = client.post("/v3/mail/nope", json=body)

    assert (first.status_code, second.status_code, missing.status_code) == (202, 202, 404)
    assert first.headers["X-Message-Id"] != second.headers["X-Message-Id"]
    assert len(standin.messages) == 2
    assert standin.connections == 1


def test_sender_keeps_connections_alive_across_requests_and_batches(
    standin: SendgridStandin, sender: SendgridEmailSender, make_email: MakeEmail
) -> None:
    # sendgrid-python's own client sends "Connection: close" (a TCP and TLS
    # handshake per message); the sender posts the library's body over one
    # keep-alive client instead, and the stand-in still validates every request.
    first = sender.send_batch([make_email(n) for n in range(40)])
    second = sender.send_batch([make_email(n) for n in range(40, 60)])

    assert all(r.ok for r in first + second)
    assert len(standin.messages) == 60
    assert 1 <= standin.connections <= sender.concurrency  # not one per request
    assert all(m.headers.get("Connection", "keep-alive") != "close" for m in standin.messages)
    assert standin.messages[0].headers["User-Agent"].startswith("sendgrid/")


def test_one_connection_serves_a_serial_sender(
    standin: SendgridStandin, serial: SendgridEmailSender, make_email: MakeEmail
) -> None:
    results = serial.send_batch([make_email(n) for n in range(5)])

    assert all(r.ok for r in results)
    assert standin.connections == 1
    serial.close()  # closing drops the connection; the sender stays usable
    assert serial.send_batch([make_email(9)])[0].ok
    assert standin.connections == 2


def test_fail_next_rejects_unknown_faults(standin: SendgridStandin) -> None:
    with pytest.raises(ValueError, match="fail_next"):
        standin.fail_next("explode")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"api_key": ""}, "API key"),
        ({"host": "api.sendgrid.com"}, "http(s) URL"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_settings_name_the_setting(kwargs: dict[str, Any], fragment: str) -> None:
    args: dict[str, Any] = {"api_key": DEFAULT_API_KEY, **kwargs}
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        SendgridEmailSender(**args)
