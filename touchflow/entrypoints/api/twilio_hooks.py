"""Twilio webhooks: inbound texts, message and call status callbacks, the click-to-call bridge.

Twilio signs every webhook (https://www.twilio.com/docs/usage/webhooks/webhooks-security):
``X-Twilio-Signature`` is a base64 HMAC-SHA1 (or SHA-256, named in
``X-Twilio-Webhooks-Signature-Settings``) under the account auth token of the
full URL Twilio requested plus the sorted form parameters. The URL is ours as
Twilio sees it: ``TOUCHFLOW_PUBLIC_URL`` + path + query, so a proxy in front
does not break the check. A request that fails it gets 403 and stores nothing.

Quirks:

* Twilio retries a callback it could not deliver; inbound texts dedupe on
  ``MessageSid``, status callbacks on ``MessageSid``/``CallSid`` plus the
  status (one message has several: queued, sent, delivered).
* Status callbacks carry no timestamp we trust; events are stamped with our clock.
* With Advanced Opt-Out Twilio answers STOP/START/HELP itself and drops our
  TwiML reply; without it, the reply below is what the person gets.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Connection
from starlette.datastructures import UploadFile
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from touchflow.adapters.twilio.sms_voice import bridge_twiml
from touchflow.entrypoints.api.context import Context, context
from touchflow.services.calls import call_target, task_touch_key
from touchflow.services.inbound import (
    TWILIO,
    ProviderEvent,
    ingest_events,
    sms_help_text,
    sms_keyword,
    sms_start_text,
    sms_stop_text,
)

router = APIRouter()
_log = logging.getLogger("touchflow.api.twilio")
_XML = "application/xml"


class _Params:
    """Form parameters as the validator reads them (``getlist``), text only."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        self._by_key: dict[str, list[str]] = {}
        for k, v in items:
            self._by_key.setdefault(k, []).append(v)

    def __iter__(self) -> Any:
        return iter(self._by_key)

    def getlist(self, key: str) -> list[str]:
        return self._by_key.get(key, [])

    def first(self, key: str) -> str | None:
        values = self._by_key.get(key)
        return values[0] if values else None

    def flat(self) -> dict[str, str]:
        """One value per key (the first), for storing as the event payload."""
        return {k: v[0] for k, v in self._by_key.items()}


async def _verified(request: Request, ctx: Context) -> _Params | Response:
    """The form parameters of an authentic Twilio request, or the response refusing it."""
    token = ctx.settings.twilio.auth_token
    if token is None or not token.get_secret_value():
        _log.error("refusing a Twilio webhook: TOUCHFLOW_TWILIO__AUTH_TOKEN is not set")
        return _plain(503, "TOUCHFLOW_TWILIO__AUTH_TOKEN is not set")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return _plain(403, "missing X-Twilio-Signature")
    try:
        form = await request.form()
    except Exception:  # a body the form parser chokes on cannot carry a valid signature
        return _plain(403, "signature check failed")
    items: list[tuple[str, str]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):  # Twilio never uploads files
            return _plain(403, "signature check failed")
        items.append((key, value))
    params = _Params(items)
    url = ctx.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    try:
        ok = RequestValidator(token.get_secret_value()).validate(url, params, signature, algorithm)
    except (ValueError, TypeError, UnicodeError):
        ok = False
    if not ok:
        _log.warning("refused a Twilio webhook to %s: bad signature", request.url.path)
        return _plain(403, "signature check failed")
    return params


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


def _twiml(body: str) -> Response:
    return Response(body, media_type=_XML)


async def _ingest(ctx: Context, ev: ProviderEvent) -> int:
    """Store and apply one event; how many rows were new (0: a duplicate delivery)."""
    now = ctx.now()

    def work(conn: Connection) -> int:
        return ingest_events(conn, ctx.runtimes, [ev], now).stored

    return await ctx.transaction(work)


@router.post("/webhooks/twilio/sms")
async def twilio_sms(request: Request) -> Response:
    """An inbound text: STOP/START/HELP keywords, or a reply to our SMS."""
    ctx = context(request)
    params = await _verified(request, ctx)
    if isinstance(params, Response):
        return params
    sid = params.first("MessageSid") or params.first("SmsSid")
    sender = params.first("From")
    if not sid or not sender:
        return _plain(400, "MessageSid and From are required")
    ev = ProviderEvent(
        provider_event_id=f"twilio:{sid}",
        source=TWILIO,
        type="sms_inbound",
        occurred_at=ctx.now(),
        phone=sender,
        payload=params.flat(),
    )
    stored = await _ingest(ctx, ev)
    reply = MessagingResponse()
    company = ctx.settings.sender.company
    keyword = sms_keyword(params.first("Body"))
    if stored and keyword is not None:  # a retried delivery is not answered twice
        text = {"stop": sms_stop_text, "start": sms_start_text, "help": sms_help_text}[keyword]
        reply.message(text(company))
    return _twiml(str(reply))


@router.post("/webhooks/twilio/message-status")
async def twilio_message_status(request: Request) -> Response:
    """Delivery progress of one of our texts (``?touch_key=`` names its touch)."""
    ctx = context(request)
    params = await _verified(request, ctx)
    if isinstance(params, Response):
        return params
    sid = params.first("MessageSid") or params.first("SmsSid")
    status = params.first("MessageStatus") or params.first("SmsStatus")
    if not sid or not status:
        return _plain(400, "MessageSid and MessageStatus are required")
    ev = ProviderEvent(
        provider_event_id=f"twilio:{sid}:{status}",
        source=TWILIO,
        type="sms_status",
        occurred_at=ctx.now(),
        touch_key=request.query_params.get("touch_key") or params.first("touch_key"),
        phone=params.first("To"),
        payload=params.flat(),
    )
    await _ingest(ctx, ev)
    return Response(status_code=204)


@router.post("/webhooks/twilio/call-status")
async def twilio_call_status(request: Request) -> Response:
    """Progress of a click-to-call call (``?task_id=`` names its task)."""
    ctx = context(request)
    params = await _verified(request, ctx)
    if isinstance(params, Response):
        return params
    sid = params.first("CallSid")
    status = params.first("CallStatus")
    if not sid or not status:
        return _plain(400, "CallSid and CallStatus are required")
    task_id = request.query_params.get("task_id", "")
    touch_key: str | None = None
    if task_id.isascii() and task_id.isdigit() and len(task_id) < 12:

        def lookup(conn: Connection) -> str | None:
            return task_touch_key(conn, int(task_id))

        touch_key = await ctx.transaction(lookup)
    # No phone: the call's "To" is the SDR's own phone (the agent leg rings first).
    ev = ProviderEvent(
        provider_event_id=f"twilio:{sid}:{status}",
        source=TWILIO,
        type="call_status",
        occurred_at=ctx.now(),
        touch_key=touch_key,
        payload=params.flat(),
    )
    await _ingest(ctx, ev)
    return Response(status_code=204)


@router.post("/twilio/voice/bridge/{task_id}")
async def twilio_bridge(task_id: int, request: Request) -> Response:
    """TwiML for the SDR's answered leg: dial the prospect with our caller id."""
    ctx = context(request)
    params = await _verified(request, ctx)
    if isinstance(params, Response):
        return params

    def lookup(conn: Connection) -> str | None:
        return call_target(conn, task_id)

    target = await ctx.transaction(lookup)
    caller_id = ctx.settings.twilio.from_number or ctx.settings.sender.phone
    if target is not None and caller_id:
        try:
            return _twiml(bridge_twiml(target, caller_id))
        except ValueError as exc:
            _log.warning("cannot bridge task %s: %s", task_id, exc)
    refusal = VoiceResponse()
    refusal.say("This call cannot be connected.")
    refusal.hangup()
    return _twiml(str(refusal))
