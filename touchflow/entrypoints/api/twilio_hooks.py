"""Twilio webhooks: inbound texts, message and call status callbacks, the click-to-call bridge.

The routes are thin: the adapter (``touchflow.adapters.twilio.webhooks``,
reached through :mod:`touchflow.bootstrap`) checks ``X-Twilio-Signature``
against the URL as Twilio requested it (``TOUCHFLOW_PUBLIC_URL`` + path +
query, so a proxy in front does not break the check), reads the form into
vendor-free events and writes the TwiML answers. A request that fails the
check gets 403 and stores nothing.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy import Connection
from starlette.datastructures import UploadFile

from touchflow import bootstrap
from touchflow.domain.events import ProviderEvent
from touchflow.entrypoints.api.context import Context, context
from touchflow.ports import MessagingWebhook
from touchflow.services.calls import call_target, task_touch_key
from touchflow.services.provider_events import ingest_events

router = APIRouter()
_log = logging.getLogger("touchflow.api.twilio")
_XML = "application/xml"


Form = list[tuple[str, str]]


async def _verified(
    request: Request, ctx: Context
) -> tuple[MessagingWebhook, Form] | Response:
    """The adapter and the form of an authentic Twilio request, or the response refusing it."""
    webhook = ctx.adapter("messaging_webhook", bootstrap.messaging_webhook)
    if isinstance(webhook, str):
        _log.error("refusing a Twilio webhook: %s", webhook)
        return _plain(503, webhook)
    try:
        form = await request.form()
    except Exception:  # a body the form parser chokes on cannot carry a valid signature
        return _plain(403, "signature check failed")
    items: Form = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):  # Twilio never uploads files
            return _plain(403, "signature check failed")
        items.append((key, value))
    url = ctx.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not webhook.authentic(url, items, request.headers):
        _log.warning("refused a Twilio webhook to %s: bad or missing signature", request.url.path)
        return _plain(403, "signature check failed")
    return webhook, items


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


def _twiml(body: str) -> Response:
    return Response(body, media_type=_XML)


async def _ingest(ctx: Context, ev: ProviderEvent) -> int:
    """Store and apply one event; how many rows were new (0: a duplicate delivery)."""
    now = ctx.now()

    def work(conn: Connection) -> int:
        pause_days = ctx.settings.replies.account_pause_days  # a text reply's on_account_reply
        return ingest_events(conn, ctx.runtimes, [ev], now, account_pause_days=pause_days).stored

    return await ctx.transaction(work)


@router.post("/webhooks/twilio/sms")
async def twilio_sms(request: Request) -> Response:
    """An inbound text: STOP/START/HELP keywords, or a reply to our SMS."""
    ctx = context(request)
    verified = await _verified(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, items = verified
    ev = webhook.inbound_sms_event(items, ctx.now())
    if isinstance(ev, str):
        return _plain(400, ev)
    stored = await _ingest(ctx, ev)
    # A retried delivery is not answered twice.
    return _twiml(webhook.sms_answer(ev if stored else None, ctx.settings.sender.company))


@router.post("/webhooks/twilio/message-status")
async def twilio_message_status(request: Request) -> Response:
    """Delivery progress of one of our texts (``?touch_key=`` names its touch)."""
    ctx = context(request)
    verified = await _verified(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, items = verified
    ev = webhook.message_status_event(items, request.query_params.get("touch_key"), ctx.now())
    if isinstance(ev, str):
        return _plain(400, ev)
    await _ingest(ctx, ev)
    return Response(status_code=204)


@router.post("/webhooks/twilio/call-status")
async def twilio_call_status(request: Request) -> Response:
    """Progress of a click-to-call call (``?task_id=`` names its task)."""
    ctx = context(request)
    verified = await _verified(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, items = verified
    task_id = request.query_params.get("task_id", "")
    touch_key: str | None = None
    if task_id.isascii() and task_id.isdigit() and len(task_id) < 12:

        def lookup(conn: Connection) -> str | None:
            return task_touch_key(conn, int(task_id))

        touch_key = await ctx.transaction(lookup)
    ev = webhook.call_status_event(items, touch_key, ctx.now())
    if isinstance(ev, str):
        return _plain(400, ev)
    await _ingest(ctx, ev)
    return Response(status_code=204)


@router.post("/twilio/voice/bridge/{task_id}")
async def twilio_bridge(task_id: int, request: Request) -> Response:
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
