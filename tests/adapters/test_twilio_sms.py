"""TwilioSmsSender: the real twilio library over real HTTP against the local Twilio stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.response import Response

from tests.support.standins.openapi import RequestSchema
from tests.support.standins.twilio_api import TwilioStandin
from touchflow.adapters.twilio.sms_voice import (
    TOUCH_KEY_PARAM,
    TwilioSmsSender,
    bridge_twiml,
    map_twilio_error,
)
from touchflow.errors import (
    ConfigError,
    ConnectorError,
    DeliveryUnknown,
    FatalError,
    RateLimited,
    RecipientRejected,
    RetryableError,
)
from touchflow.ports import OutboundSms

SPEC = "twilio/twilio_api_v2010.json"
FROM = "+12015550123"
CALLBACK = "https://hooks.acme.test/twilio/sms-status?src=touchflow"


@pytest.fixture
def twilio() -> Iterator[TwilioStandin]:
    with TwilioStandin(timeout_delay_s=1.5) as standin:
        yield standin


def sender_for(standin: TwilioStandin, **kwargs: Any) -> TwilioSmsSender:
    kwargs.setdefault("base_url", standin.base_url)
    kwargs.setdefault("status_callback_url", CALLBACK)
    kwargs.setdefault("timeout_s", 2.0)
    kwargs.setdefault("concurrency", 4)
    return TwilioSmsSender(
        standin.account_sid, kwargs.pop("auth_token", standin.auth_token), **kwargs
    )


def sms(n: int, to: str, **overrides: Any) -> OutboundSms:
    fields = {"touch_key": f"enr-{n}:step-2:0", "from_number": FROM, "to_number": to}
    fields["body"] = f"Hi, message {n} - reply STOP to opt out"
    fields.update(overrides)
    return OutboundSms(**fields)


def requests_to(standin: TwilioStandin, number: str) -> int:
    return sum(1 for r in standin.requests if r.value("To") == number)


# -- sending -------------------------------------------------------------------


def test_message_is_sent_normalized_valid_and_tagged_with_the_touch(twilio: TwilioStandin):
    with sender_for(twilio, default_region="US") as sender:
        [result] = sender.send_batch([sms(1, "(415) 555-0101", from_number="201.555.0123")])

    assert result.ok, result.error
    [accepted] = twilio.messages
    assert result.provider_id == accepted["sid"]
    assert accepted["sid"].startswith("SM") and len(accepted["sid"]) == 34
    assert accepted["status"] == "queued"
    [request] = twilio.requests
    assert request.status == 201
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert RequestSchema(SPEC, "CreateMessage").form_errors(request.form) == []
    assert request.value("To") == "+14155550101"
    assert request.value("From") == FROM
    assert request.value("Body") == "Hi, message 1 - reply STOP to opt out"
    callback = urlsplit(request.value("StatusCallback") or "")
    assert callback.netloc == "hooks.acme.test" and callback.path == "/twilio/sms-status"
    assert parse_qs(callback.query) == {"src": ["touchflow"], TOUCH_KEY_PARAM: ["enr-1:step-2:0"]}
    assert request.headers["user-agent"].startswith("twilio-python/")


def test_a_batch_keeps_its_order_over_concurrent_requests(twilio: TwilioStandin) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(200, 224)]
    batch = [sms(i, number, body=f"body {i} ✓") for i, number in enumerate(numbers)]
    with sender_for(twilio, concurrency=8) as sender:
        results = sender.send_batch(batch)
        assert sender.send_batch([]) == []

    assert [r.touch_key for r in results] == [m.touch_key for m in batch]
    by_sid = {m["sid"]: m for m in twilio.messages}
    assert len(by_sid) == len(batch)
    for message, result in zip(batch, results, strict=True):
        assert result.ok
        assert by_sid[result.provider_id or ""]["to"] == message.to_number
        assert by_sid[result.provider_id or ""]["body"] == message.body


def test_mixed_batch_returns_one_outcome_per_message(twilio: TwilioStandin) -> None:
    twilio.reject_number("+14155550102", code=21610)
    twilio.fail_next(500, to="+14155550105")
    twilio.fail_next(429, to="+14155550106", retry_after=7)
    batch = [
        sms(1, "+14155550101"),  # ok
        sms(2, "+14155550102"),  # replied STOP
        sms(3, "+15005550001"),  # Twilio's magic invalid number: 21211
        sms(4, "+1 555"),  # not a number: rejected here, no HTTP
        sms(5, "+14155550105"),  # 500
        sms(6, "+14155550106"),  # 429
        sms(7, "+15005550009"),  # magic: not a mobile number (21614)
    ]
    with sender_for(twilio) as sender:
        results = sender.send_batch(batch)

    assert [r.touch_key for r in results] == [m.touch_key for m in batch]
    ok, opt_out, invalid, local, server, limited, landline = results
    assert ok.ok and ok.provider_id == twilio.messages[0]["sid"]
    assert len(twilio.messages) == 1

    assert isinstance(opt_out.error, RecipientRejected)
    assert opt_out.error.kind == "opt_out"
    assert (opt_out.error.status, opt_out.error.vendor_code) == (400, "21610")
    assert "unsubscribed recipient" in str(opt_out.error)

    assert isinstance(invalid.error, RecipientRejected) and invalid.error.kind == "invalid"
    assert invalid.error.vendor_code == "21211"
    assert isinstance(landline.error, RecipientRejected) and landline.error.kind == "invalid"
    assert landline.error.vendor_code == "21614"

    assert isinstance(local.error, RecipientRejected) and local.error.kind == "invalid"
    assert local.error.status is None and "'+1 555'" in str(local.error)
    assert not any(r.value("To") in ("+1 555", "+1555") for r in twilio.requests)

    assert type(server.error) is RetryableError
    assert server.error.status == 500
    assert isinstance(limited.error, RateLimited)
    assert limited.error.retry_after == 7.0
    assert (limited.error.status, limited.error.vendor_code) == (429, "20429")

    # Vendor exception types never leave the connector; they are kept as the cause.
    for result in results[1:]:
        assert isinstance(result.error, ConnectorError)
        assert result.error.connector == "twilio" and result.error.operation == "send_sms"
    assert isinstance(opt_out.error.__cause__, TwilioRestException)
    # Nothing was retried behind our back: one request per number that got one.
    assert requests_to(twilio, "+14155550105") == 1
    assert requests_to(twilio, "+14155550106") == 1


def test_timeout_after_the_request_went_out_is_delivery_unknown(twilio: TwilioStandin) -> None:
    twilio.fail_next("timeout", to="+14155550104")
    with sender_for(twilio, timeout_s=0.3) as sender:
        slow, fine = sender.send_batch([sms(1, "+14155550104"), sms(2, "+14155550108")])

    assert isinstance(slow.error, DeliveryUnknown), slow.error
    assert slow.provider_id is None
    assert fine.ok
    # The stand-in accepted it: it exists once at Twilio, and it was not resent.
    assert [m["to"] for m in twilio.messages].count("+14155550104") == 1
    assert requests_to(twilio, "+14155550104") == 1


def test_connection_lost_after_the_request_is_delivery_unknown(twilio: TwilioStandin) -> None:
    twilio.fail_next("disconnect")
    with sender_for(twilio) as sender:
        [result] = sender.send_batch([sms(1, "+14155550109")])
        [after] = sender.send_batch([sms(2, "+14155550110")])

    assert isinstance(result.error, DeliveryUnknown), result.error
    assert after.ok  # the session recovered
    assert len(twilio.messages) == 2 and requests_to(twilio, "+14155550109") == 1


def test_wrong_credentials_are_fatal_for_every_message(twilio: TwilioStandin) -> None:
    with sender_for(twilio, auth_token="wrong-token") as sender:
        results = sender.send_batch([sms(1, "+14155550101"), sms(2, "+14155550102")])

    for result in results:
        assert type(result.error) is FatalError
        assert result.error.status == 401 and result.error.vendor_code == "20003"
        assert "Authenticate" in str(result.error)
    assert twilio.messages == []
    assert {r.status for r in twilio.requests} == {401}


def test_unreachable_api_is_retryable(twilio: TwilioStandin, closed_port: int) -> None:
    with sender_for(twilio, base_url=f"http://127.0.0.1:{closed_port}") as sender:
        [result] = sender.send_batch([sms(1, "+14155550101")])
        with pytest.raises(RetryableError) as info:
            sender.place_call(
                agent_number="+14155550199", from_number=FROM, twiml_url="https://x.test/t"
            )
    assert type(result.error) is RetryableError
    assert "cannot connect" in str(result.error)
    assert type(info.value) is RetryableError


def test_an_invalid_sender_number_is_fatal_without_a_request(twilio: TwilioStandin) -> None:
    with sender_for(twilio) as sender:
        [result] = sender.send_batch([sms(1, "+14155550101", from_number="555-0123")])
    assert type(result.error) is FatalError
    assert "sender number" in str(result.error)
    assert twilio.requests == []


def test_the_sender_is_usable_after_close(twilio: TwilioStandin) -> None:
    sender = sender_for(twilio)
    assert sender.send_batch([sms(1, "+14155550101"), sms(2, "+14155550102")])[0].ok
    sender.close()
    sender.close()
    assert all(r.ok for r in sender.send_batch([sms(3, "+14155550103"), sms(4, "+14155550104")]))
    sender.close()
    assert len(twilio.messages) == 4


def test_missing_credentials_name_the_settings() -> None:
    with pytest.raises(ConfigError, match="TOUCHFLOW_TWILIO__AUTH_TOKEN"):
        TwilioSmsSender("AC" + "0" * 32, "")
    with pytest.raises(ConfigError, match="concurrency"):
        TwilioSmsSender("AC" + "0" * 32, "token", concurrency=0)


# -- click-to-call -------------------------------------------------------------


def test_place_call_rings_the_agent_and_points_twilio_at_the_twiml(twilio: TwilioStandin):
    with sender_for(twilio, default_region="US") as sender:
        sid = sender.place_call(
            agent_number="(415) 555-0199",
            from_number=FROM,
            twiml_url="https://api.acme.test/twilio/bridge?prospect=p-42",
            status_callback_url="https://api.acme.test/twilio/call-status?task=t-9",
        )

    [call] = twilio.calls
    assert sid == call["sid"] and sid.startswith("CA") and len(sid) == 34
    [request] = twilio.requests
    assert request.path.endswith("/Calls.json")
    assert RequestSchema(SPEC, "CreateCall").form_errors(request.form) == []
    assert request.value("To") == "+14155550199"  # the SDR's phone rings first
    assert request.value("From") == FROM
    assert request.value("Url") == "https://api.acme.test/twilio/bridge?prospect=p-42"
    assert request.value("Method") == "POST"
    assert request.value("StatusCallback") == "https://api.acme.test/twilio/call-status?task=t-9"
    assert request.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]


def test_place_call_without_status_callback(twilio: TwilioStandin) -> None:
    with sender_for(twilio) as sender:
        sender.place_call(
            agent_number="+14155550199", from_number=FROM, twiml_url="https://x.test/twiml"
        )
    [request] = twilio.requests
    assert not {"StatusCallback", "StatusCallbackEvent"} & set(request.form)


def test_place_call_maps_errors_like_sms(twilio: TwilioStandin) -> None:
    with sender_for(twilio) as sender:
        with pytest.raises(RecipientRejected) as bad_agent:
            sender.place_call(agent_number="12", from_number=FROM, twiml_url="https://x.test/t")
        twilio.fail_next(503)
        with pytest.raises(RetryableError) as unavailable:
            sender.place_call(
                agent_number="+14155550199", from_number=FROM, twiml_url="https://x.test/t"
            )
        with pytest.raises(FatalError) as bad_url:
            sender.place_call(
                agent_number="+14155550199", from_number=FROM, twiml_url="/relative/twiml"
            )
    assert bad_agent.value.kind == "invalid" and bad_agent.value.operation == "place_call"
    assert unavailable.value.status == 503
    assert isinstance(unavailable.value.__cause__, TwilioRestException)
    assert bad_url.value.status == 400 and bad_url.value.vendor_code == "21205"
    assert twilio.calls == []


def test_bridge_twiml_dials_the_prospect_with_the_caller_id() -> None:
    xml = bridge_twiml("+1 (415) 555-0101", "+1 201 555 0123")
    assert xml.endswith(
        '<Response><Dial callerId="+12015550123"><Number>+14155550101</Number></Dial></Response>'
    )
    root = ET.fromstring(bridge_twiml("+442079460958", FROM, record=True))
    [dial] = list(root)
    assert (root.tag, dial.tag) == ("Response", "Dial")
    assert dial.attrib == {"callerId": FROM, "record": "record-from-answer-dual"}
    assert [(n.tag, n.text) for n in dial] == [("Number", "+442079460958")]
    with pytest.raises(ValueError, match="invalid phone number"):
        bridge_twiml("not a number", FROM)


# -- the error mapping on its own ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected", "kind"),
    [
        (400, 21610, RecipientRejected, "opt_out"),
        (400, 21211, RecipientRejected, "invalid"),
        (400, 21614, RecipientRejected, "invalid"),
        (400, 21408, RecipientRejected, "invalid"),
        (400, 21612, RecipientRejected, "invalid"),
        (400, 21217, RecipientRejected, "invalid"),
        (429, 20429, RateLimited, None),
        (400, 20429, RateLimited, None),
        (500, 20500, RetryableError, None),
        (503, None, RetryableError, None),
        (401, 20003, FatalError, None),
        (404, 20404, FatalError, None),
        (400, 21606, FatalError, None),  # our From number cannot send SMS: configuration
    ],
)
def test_map_twilio_error(status: int, code: int | None, expected: type, kind: str | None):
    exc = TwilioRestException(
        status, "https://api.twilio.com/x", "Unable to create record: boom", code, "POST"
    )
    error = map_twilio_error(exc, "send_sms")
    assert type(error) is expected
    assert error.__cause__ is exc and error.status == status
    assert getattr(error, "kind", None) == kind
    assert "Unable to create" not in str(error) and "boom" in str(error)


def test_map_twilio_error_reads_retry_after_and_problem_details() -> None:
    exc = TwilioRestException(429, "/x", "slow down", 20429, "POST")
    response = Response(429, "{}", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    limited = map_twilio_error(exc, "send_sms", response=response)
    assert isinstance(limited, RateLimited) and limited.retry_after == 0.0  # a date in the past

    problem = TwilioServiceException("https://x/t", "Unsubscribed", 400, 21610, detail="STOP")
    rejected = map_twilio_error(problem, "place_call")
    assert isinstance(rejected, RecipientRejected) and rejected.kind == "opt_out"
    assert "Unsubscribed: STOP" in str(rejected)

    garbled = map_twilio_error(
        TwilioException("bad json"), "send_sms", response=Response(201, "", {})
    )
    assert isinstance(garbled, DeliveryUnknown)


# -- the stand-in itself: validation is real -----------------------------------


def _post(standin: TwilioStandin, kind: str, form: dict[str, Any], **kw: Any) -> httpx.Response:
    url = f"{standin.base_url}/2010-04-01/Accounts/{standin.account_sid}/{kind}.json"
    kw.setdefault("auth", (standin.account_sid, standin.auth_token))
    return httpx.post(url, data=form, timeout=5, **kw)


def test_standin_rejects_an_invalid_message_body(twilio: TwilioStandin) -> None:
    missing = _post(twilio, "Messages", {"From": FROM})
    assert missing.status_code == 400
    error = missing.json()
    assert error["code"] == 21604 and error["status"] == 400
    assert error["more_info"] == "https://www.twilio.com/docs/errors/21604"
    assert "'To' is a required property" in error["message"]  # from the spec's schema
    assert "message body is required" in error["message"]

    bad_types = _post(
        twilio,
        "Messages",
        {
            "To": "4155550101",
            "From": FROM,
            "Body": "x",
            "ProvideFeedback": "maybe",
            "ContentRetention": "forever",
            "from_": FROM,
            "StatusCallback": "not a url",
        },
    )
    assert bad_types.status_code == 400
    violations = bad_types.json()["details"]["violations"]
    assert any(
        v.startswith("ProvideFeedback: 'maybe' is not of type 'boolean'") for v in violations
    )
    assert any(v.startswith("ContentRetention:") for v in violations)
    assert "from_: unknown parameter" in violations
    assert any(v.startswith("To:") and "E.164" in v for v in violations)
    assert any(v.startswith("StatusCallback:") for v in violations)

    too_long = _post(twilio, "Messages", {"To": "+14155550101", "From": FROM, "Body": "x" * 1601})
    assert too_long.json()["code"] == 21617
    assert twilio.messages == []
    assert [r.status for r in twilio.requests] == [400, 400, 400]


def test_standin_rejects_an_invalid_call_body(twilio: TwilioStandin) -> None:
    response = _post(twilio, "Calls", {"To": "+14155550199", "From": FROM, "Timeout": "soon"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 21205
    assert any(
        "Timeout: 'soon' is not of type 'integer'" in v for v in body["details"]["violations"]
    )
    ok = _post(twilio, "Calls", {"To": "client:sdr-7", "From": FROM, "Twiml": "<Response/>"})
    assert ok.status_code == 201 and ok.json()["sid"].startswith("CA")


def test_standin_checks_auth_path_and_content_type(twilio: TwilioStandin) -> None:
    form = {"To": "+14155550101", "From": FROM, "Body": "hi"}
    unauthorized = _post(twilio, "Messages", form, auth=(twilio.account_sid, "nope"))
    assert unauthorized.status_code == 401
    assert unauthorized.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert _post(twilio, "Messages", form, auth=None).status_code == 401
    other = httpx.post(
        f"{twilio.base_url}/2010-04-01/Accounts/AC{'1' * 32}/Messages.json",
        data=form,
        auth=(twilio.account_sid, twilio.auth_token),
    )
    assert other.status_code == 404 and other.json()["code"] == 20404
    as_json = httpx.post(
        f"{twilio.base_url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json",
        json=form,
        auth=(twilio.account_sid, twilio.auth_token),
    )
    assert as_json.status_code == 400
    created = _post(twilio, "Messages", form)
    assert created.status_code == 201
    assert created.json()["uri"].endswith(f"/Messages/{created.json()['sid']}.json")
    assert len(twilio.messages) == 1


def test_standin_runs_from_the_command_line() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with subprocess.Popen(
        [sys.executable, "-m", "tests.support.standins.twilio_api", "--port", "0",
         "--account-sid", "AC" + "a" * 32, "--auth-token", "secret"],
        cwd=root, env=env, stdout=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("twilio stand-in listening on http://127.0.0.1:"), first
            base_url = first.rsplit(" ", 1)[1].strip()
            response = httpx.post(
                f"{base_url}/2010-04-01/Accounts/{'AC' + 'a' * 32}/Messages.json",
                data={"To": "+14155550101", "From": FROM, "Body": "hi"},
                auth=("AC" + "a" * 32, "secret"),
                timeout=5,
            )
            assert response.status_code == 201
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0


def test_standin_clear_and_magic_numbers() -> None:
    form = {"To": "+15005550004", "From": FROM, "Body": "hi"}
    with TwilioStandin() as standin:
        assert _post(standin, "Messages", form).json()["code"] == 21610  # magic: opted out
        standin.reject_number("+14155550101", code=21612)
        standin.fail_next(500)
        standin.clear()
        assert standin.requests == [] and standin.messages == []
        assert _post(standin, "Messages", {**form, "To": "+14155550101"}).status_code == 201
        assert _post(standin, "Messages", form).status_code == 400  # magic numbers stay on
    with TwilioStandin(magic_numbers=False) as plain:
        assert _post(plain, "Messages", form).status_code == 201
