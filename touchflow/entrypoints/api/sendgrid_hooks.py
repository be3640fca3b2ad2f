"""SendGrid webhooks: the signed Event Webhook and Inbound Parse.

The routes are thin: the adapter (``touchflow.adapters.sendgrid.webhooks``,
reached through :mod:`touchflow.bootstrap`) checks the signature and parses
the body into vendor-free events and messages; the services store and apply
them. Inbound Parse is not signed: its URL carries a shared secret as
``?token=`` (``TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN``). Refusals are problem
documents (:mod:`touchflow.entrypoints.api.problems`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from touchflow import bootstrap
from touchflow.domain.replies import Classification, classify
from touchflow.entrypoints.api.context import Context, context
from touchflow.entrypoints.api.contract import (
    EventsAnswer,
    InboundAnswer,
    SendgridEvent,
    SendgridInboundParse,
    body,
    errors,
    model_schema,
)
from touchflow.entrypoints.api.problems import problem
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


_EVENTS_SCHEMA = {
    "type": "array",
    "items": model_schema(SendgridEvent),
    "description": "A batch of events (SendGrid sends up to a few MB at a time).",
}
_SG_HEADERS = [
    {
        "name": "X-Twilio-Email-Event-Webhook-Signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "Base64 ECDSA (P-256, SHA-256) signature of the timestamp + the raw body.",
    },
    {
        "name": "X-Twilio-Email-Event-Webhook-Timestamp",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"},
        "description": "Unix seconds; a stale one is refused.",
    },
]


@router.post(
    "/webhooks/sendgrid/events",
    summary="A batch of SendGrid Event Webhook events (ECDSA-signed)",
    openapi_extra={**body("application/json", _EVENTS_SCHEMA), "parameters": _SG_HEADERS},
    responses={
        200: {"model": EventsAnswer, "description": "Stored and applied; malformed ones skipped."},
        **errors(
            {
                400: "Not a JSON array, or no valid event in it (the reasons in errors).",
                403: "A forged, missing or stale signature (nothing is stored).",
                413: "A body over 32 MiB.",
                503: "TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY is not set or does not parse.",
            }
        ),
    },
)
async def sendgrid_events(request: Request) -> JSONResponse:
    """Verify, parse, store and apply a batch of SendGrid events."""
    ctx = context(request)
    webhook = ctx.adapter("email_event_webhook", bootstrap.email_event_webhook)
    if isinstance(webhook, str):
        _log.error("refusing SendGrid events: %s", webhook)
        return problem(request, 503, webhook)
    raw = await _read_body(request, MAX_EVENTS_BODY)
    if raw is None:
        return problem(request, 413, "body too large")
    # Headers as received (case-insensitive): the adapter knows which carry the signature.
    return await run_in_threadpool(_process_events, ctx, webhook, raw, request)


def _process_events(
    ctx: Context, webhook: EmailEventWebhook, raw: bytes, request: Request
) -> JSONResponse:
    now = ctx.now()
    headers: Mapping[str, str] = request.headers
    refused = webhook.refusal(raw, headers, now)
    if refused is not None:
        _log.warning("refused SendGrid event batch: %s", refused)
        return problem(request, 403, f"signature check failed: {refused}")
    try:
        batch, skipped = webhook.parse_events(raw)
    except ValueError as exc:
        return problem(request, 400, str(exc))
    if skipped and not batch:
        return problem(
            request, 400, "no valid event in the batch", errors=skipped[:_MAX_REPORTED_ERRORS]
        )
    report = IngestReport()
    if batch:
        report = ctx.transaction_sync(lambda conn: ingest_events(conn, ctx.runtimes, batch, now))
    if skipped:
        _log.warning("SendGrid batch: %d malformed events skipped", len(skipped))
    return JSONResponse(
        {
            **report.as_dict(),
            "malformed": len(skipped),
            "errors": skipped[:_MAX_REPORTED_ERRORS],
        }
    )


# -- Inbound Parse -----------------------------------------------------------------


@router.post(
    "/webhooks/sendgrid/inbound",
    summary="One received email from SendGrid Inbound Parse (?token= shared secret)",
    openapi_extra=body("multipart/form-data", model_schema(SendgridInboundParse)),
    responses={
        200: {"model": InboundAnswer, "description": "Matched, classified and applied."},
        **errors(
            {
                400: "Not an email touchflow can read, or a form part over 32 MiB.",
                403: "A bad or missing token (nothing is stored).",
                503: "TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN is not set.",
            }
        ),
    },
)
async def sendgrid_inbound(
    request: Request,
    token: str = Query(default="", max_length=200, description="The shared secret."),
) -> JSONResponse:
    """One received email from Inbound Parse: match, classify, apply."""
    ctx = context(request)
    secret = ctx.settings.sendgrid.inbound_parse_token
    if secret is None or not secret.get_secret_value():
        return problem(request, 503, "TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN is not set")
    if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        return problem(request, 403, "bad or missing token")
    # A form the parser refuses (too large a part, bad multipart) is a 400 problem
    # document: Starlette raises HTTPException, which problems.HANDLERS answers.
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
        return problem(request, 503, parser)
    try:
        message = await run_in_threadpool(parser.inbound_message, fields, now)
    except ValueError as exc:
        return problem(request, 400, str(exc))
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
