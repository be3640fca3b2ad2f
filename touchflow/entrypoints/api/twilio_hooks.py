"""Twilio webhooks: inbound texts, message and call status callbacks, the click-to-call bridge.

The routes are thin: the adapter (``touchflow.adapters.twilio.webhooks``,
reached through :mod:`touchflow.bootstrap`) checks ``X-Twilio-Signature``
against the URL as Twilio requested it (``TOUCHFLOW_PUBLIC_URL`` + path +
query, so a proxy in front does not break the check), reads the form into
vendor-free events and writes the TwiML answers. A request that fails the
check gets 403 and stores nothing. Refusals are problem documents
(:mod:`touchflow.entrypoints.api.problems`); Twilio only reads their status.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import Connection
from starlette.datastructures import UploadFile

from touchflow import bootstrap
from touchflow.domain.events import ProviderEvent
from touchflow.entrypoints.api.context import Context, context
from touchflow.entrypoints.api.contract import (
    MAX_ID,
    TwilioCallStatus,
    TwilioInboundSms,
    TwilioMessageStatus,
    TwilioVoiceRequest,
    body,
    errors,
    model_schema,
)
from touchflow.entrypoints.api.problems import problem
from touchflow.entrypoints.api.transcript_plan import transcription_plan
from touchflow.ports import MessagingWebhook
from touchflow.services.calls import call_target, task_touch_key
from touchflow.services.provider_events import ingest_events

router = APIRouter()
_log = logging.getLogger("touchflow.api.twilio")
_XML = "application/xml"
_FORM = "application/x-www-form-urlencoded"
#: Twilio's own bodies are a few KiB; a larger form is refused before it is parsed.
MAX_FORM = 64 * 1024
_REFUSALS = {
    403: "A forged, missing or stale X-Twilio-Signature (nothing is stored).",
    413: "A form over 64 KiB.",
    503: "TOUCHFLOW_TWILIO__AUTH_TOKEN is not set.",
}
_SIGNATURE = {
    "name": "X-Twilio-Signature",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "description": "Base64 HMAC of the URL and the sorted form under the auth token.",
}


def _docs(form: Any, answers: dict[int | str, dict[str, Any]], bad: str | None) -> dict[str, Any]:
    refusals = {400: bad, **_REFUSALS} if bad else _REFUSALS
    return {
        "openapi_extra": {**body(_FORM, model_schema(form)), "parameters": [_SIGNATURE]},
        "responses": {**answers, **errors(refusals)},
    }


_TWIML = {"description": "TwiML for Twilio.", "content": {_XML: {"schema": {"type": "string"}}}}


Form = list[tuple[str, str]]


async def _verified(request: Request, ctx: Context) -> tuple[MessagingWebhook, Form] | Response:
    """The adapter and the form of an authentic Twilio request, or the response refusing it."""
    webhook = ctx.adapter("messaging_webhook", bootstrap.messaging_webhook)
    if isinstance(webhook, str):
        _log.error("refusing a Twilio webhook: %s", webhook)
        return problem(request, 503, webhook)
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_FORM:
        return problem(request, 413, f"a Twilio form is at most {MAX_FORM} bytes")
    items: Form = []
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() == _FORM:
        # What Twilio sends: read directly (as Starlette's form parser reads it: latin-1,
        # then %-escapes as UTF-8), a few times cheaper than the general parser.
        raw = await request.body()
        if len(raw) > MAX_FORM:
            return problem(request, 413, f"a Twilio form is at most {MAX_FORM} bytes")
        items = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    else:
        try:
            form = await request.form(max_part_size=MAX_FORM)
        except Exception:  # a body the form parser chokes on cannot carry a valid signature
            return problem(request, 403, "signature check failed")
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):  # Twilio never uploads files
                return problem(request, 403, "signature check failed")
            items.append((key, value))
    url = ctx.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not webhook.authentic(url, items, request.headers):
        _log.warning("refused a Twilio webhook to %s: bad or missing signature", request.url.path)
        return problem(request, 403, "signature check failed")
    return webhook, items


#: For the other Twilio routes (call transcripts): the same check and docs, one implementation.
verified_twilio = _verified
twilio_docs = _docs


def _twiml(body: str) -> Response:
    return Response(body, media_type=_XML)


async def _ingest(ctx: Context, ev: ProviderEvent) -> int:
    """Store and apply one event; how many rows were new (0: a duplicate delivery)."""
    now = ctx.now()

    def work(conn: Connection) -> int:
        pause_days = ctx.settings.replies.account_pause_days  # a text reply's on_account_reply
        return ingest_events(conn, ctx.runtimes, [ev], now, account_pause_days=pause_days).stored

    return await ctx.transaction(work)


@router.post(
    "/webhooks/twilio/sms",
    summary="An inbound text (Twilio)",
    **_docs(TwilioInboundSms, {200: _TWIML}, "MessageSid and From are required."),
)
async def twilio_sms(request: Request) -> Response:
    """An inbound text: STOP/START/HELP keywords, or a reply to our SMS."""
    ctx = context(request)
    verified = await _verified(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, items = verified
    ev = webhook.inbound_sms_event(items, ctx.now())
    if isinstance(ev, str):
        return problem(request, 400, ev)
    stored = await _ingest(ctx, ev)
    # A retried delivery is not answered twice.
    return _twiml(webhook.sms_answer(ev if stored else None, ctx.settings.sender.company))


_NO_CONTENT = {204: {"description": "Stored (or a known duplicate)."}}
TouchKey = Annotated[
    str | None, Query(max_length=200, description="The touch the text was for (our callback URL).")
]
TaskQuery = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="The call task (our callback URL).")
]


@router.post(
    "/webhooks/twilio/message-status",
    summary="A delivery callback for one of our texts (Twilio)",
    status_code=204,
    **_docs(TwilioMessageStatus, _NO_CONTENT, "MessageSid and MessageStatus are required."),
)
async def twilio_message_status(request: Request, touch_key: TouchKey = None) -> Response:
    """Delivery progress of one of our texts (``?touch_key=`` names its touch)."""
    ctx = context(request)
    verified = await _verified(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, items = verified
    ev = webhook.message_status_event(items, touch_key, ctx.now())
    if isinstance(ev, str):
        return problem(request, 400, ev)
    await _ingest(ctx, ev)
    return Response(status_code=204)


@router.post(
    "/webhooks/twilio/call-status",
    summary="A progress callback of a click-to-call call (Twilio)",
    status_code=204,
    **_docs(TwilioCallStatus, _NO_CONTENT, "CallSid and CallStatus are required."),
)
async def twilio_call_status(request: Request, task_id: TaskQuery = None) -> Response:
    """Progress of a click-to-call call (``?task_id=`` names its task)."""
    ctx = context(request)
    verified = await _verified(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, items = verified
    touch_key: str | None = None
    if task_id is not None:
        task = task_id

        def lookup(conn: Connection) -> str | None:
            return task_touch_key(conn, task)

        touch_key = await ctx.transaction(lookup)
    ev = webhook.call_status_event(items, touch_key, ctx.now())
    if isinstance(ev, str):
        return problem(request, 400, ev)
    await _ingest(ctx, ev)
    return Response(status_code=204)


@router.post(
    "/twilio/voice/bridge/{task_id}",
    summary="TwiML that bridges the SDR's answered call to the prospect (Twilio)",
    # A call that cannot be bridged gets TwiML that says so and hangs up: no 400.
    **_docs(TwilioVoiceRequest, {200: _TWIML}, None),
)
async def twilio_bridge(
    task_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The call task's id.")],
    request: Request,
) -> Response:
    """The SDR's answered leg: dial the prospect with our caller id, or refuse."""
    ctx = context(request)
    verified = await _verified(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, _ = verified

    def lookup(conn: Connection) -> str | None:
        return call_target(conn, task_id)

    target = await ctx.transaction(lookup)
    caller_id = ctx.settings.twilio.from_number or ctx.settings.sender.phone
    if target is None or not caller_id:
        _log.warning("cannot bridge task %s: no number to dial or no caller id", task_id)
        return _twiml(webhook.bridge(target, caller_id))
    plan = await transcription_plan(ctx, task_id)
    return _twiml(webhook.bridge(target, caller_id, plan))
