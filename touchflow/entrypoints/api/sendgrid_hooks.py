"""SendGrid webhooks: the signed Event Webhook and Inbound Parse.

The routes are thin: the adapter (``touchflow.adapters.sendgrid.webhooks``,
reached through :mod:`touchflow.bootstrap`) checks the signature and parses
the body into vendor-free events and messages; the services store and apply
them. Inbound Parse is not signed: its URL carries a shared secret as
``?token=`` (``TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from touchflow import bootstrap
from touchflow.domain.replies import Classification, classify
from touchflow.entrypoints.api.context import Context, context
from touchflow.ports import EmailEventWebhook
from touchflow.services.inbound_messages import apply_inbound_message
from touchflow.services.provider_events import IngestReport, ingest_events

router = APIRouter()
_log = logging.getLogger("touchflow.api.sendgrid")

#: Bodies above this are refused unread (SendGrid's batches stay far below).
MAX_EVENTS_BODY = 32 * 1024 * 1024
MAX_PARSE_PART = 32 * 1024 * 1024
_MAX_REPORTED_ERRORS = 20


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/sendgrid/events")
async def sendgrid_events(request: Request) -> JSONResponse:
    """Verify, parse, store and apply a batch of SendGrid events."""
    ctx = context(request)
    webhook = ctx.adapter("email_event_webhook", bootstrap.email_event_webhook)
    if isinstance(webhook, str):
        _log.error("refusing SendGrid events: %s", webhook)
        return JSONResponse({"detail": webhook}, status_code=503)
    body = await _read_body(request, MAX_EVENTS_BODY)
    if body is None:
        return JSONResponse({"detail": "body too large"}, status_code=413)
    # Headers as received (case-insensitive): the adapter knows which carry the signature.
    return await run_in_threadpool(_process_events, ctx, webhook, body, request.headers)


def _process_events(
    ctx: Context, webhook: EmailEventWebhook, body: bytes, headers: Mapping[str, str]
) -> JSONResponse:
    now = ctx.now()
    problem = webhook.refusal(body, headers, now)
    if problem is not None:
        _log.warning("refused SendGrid event batch: %s", problem)
        return JSONResponse({"detail": f"signature check failed: {problem}"}, status_code=403)
    try:
        batch, errors = webhook.parse_events(body)
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    if errors and not batch:
        return JSONResponse(
            {"detail": "no valid event in the batch", "errors": errors[:_MAX_REPORTED_ERRORS]},
            status_code=400,
        )
    report = IngestReport()
    if batch:
        report = ctx.transaction_sync(lambda conn: ingest_events(conn, ctx.runtimes, batch, now))
    if errors:
        _log.warning("SendGrid batch: %d malformed events skipped", len(errors))
    return JSONResponse(
        {
            **report.as_dict(),
            "malformed": len(errors),
            "errors": errors[:_MAX_REPORTED_ERRORS],
        }
    )


# -- Inbound Parse -----------------------------------------------------------------


@router.post("/webhooks/sendgrid/inbound")
async def sendgrid_inbound(request: Request) -> JSONResponse:
    """One received email from Inbound Parse: match, classify, apply."""
    ctx = context(request)
    secret = ctx.settings.sendgrid.inbound_parse_token
    if secret is None or not secret.get_secret_value():
        return JSONResponse(
            {"detail": "TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN is not set"}, status_code=503
        )
    token = request.query_params.get("token") or ""
    if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        return JSONResponse({"detail": "bad or missing token"}, status_code=403)
    form = await request.form(max_part_size=MAX_PARSE_PART)
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key == "email":  # some setups send the raw message as a file part
                fields[key] = (await value.read()).decode("utf-8", "replace")
            continue  # attachments: not needed to classify
        fields.setdefault(key, value)
    now = ctx.now()
    parser = ctx.adapter("inbound_email_webhook", bootstrap.inbound_email_webhook)
    if isinstance(parser, str):
        return JSONResponse({"detail": parser}, status_code=503)
    try:
        message = await run_in_threadpool(parser.inbound_message, fields, now)
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    try:
        classification = classify(message)
    except Exception:  # a classifier bug must not lose a reply: treat it as one
        _log.exception("classify failed for %s; treating it as a reply", message.message_id)
        classification = Classification("reply", evidence="classifier failed")

    def work(conn: Connection) -> Any:
        return apply_inbound_message(
            conn,
            ctx.runtimes,
            message,
            classification,
            now,
            source="sendgrid_parse",
            ooo_default_days=ctx.settings.replies.ooo_default_days,
            account_pause_days=ctx.settings.replies.account_pause_days,
        )

    outcome = await ctx.transaction(work)
    return JSONResponse(
        {
            "kind": outcome.kind,
            "duplicate": outcome.duplicate,
            "matched": outcome.matched,
            "matched_by": outcome.matched_by,
            "ended": outcome.ended,
            "paused": outcome.paused,
            "resume_at": outcome.resume_at.isoformat() if outcome.resume_at else None,
            "account_paused": outcome.account_paused,
            "account_finished": outcome.account_finished,
        }
    )
