"""SendGrid webhooks: the signed Event Webhook and Inbound Parse.

Event Webhook (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event):
SendGrid POSTs a JSON array of events, batched (up to a few MB), and retries
non-2xx answers for up to 24 hours, so the same event can arrive many times:
every event carries ``sg_event_id``, the dedupe key. Signed webhooks carry an
ECDSA P-256 / SHA-256 signature of ``timestamp + raw body`` in
``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER) with the timestamp
(Unix seconds) in ``X-Twilio-Email-Event-Webhook-Timestamp``; the public key
(base64 DER SubjectPublicKeyInfo) is on the settings page
(``TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY``). Our ``custom_args``
(``touch_key``) come back as top-level fields of each event.

Inbound Parse (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook):
a multipart form per received email (``from``, ``to``, ``subject``, ``text``,
``html``, ``headers``, ``envelope``), or the whole MIME message in ``email``
when "send raw" is on. It is not signed: the URL carries a shared secret as
``?token=`` (``TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import json
import logging
import re
from datetime import UTC, datetime
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from touchflow.domain.replies import Classification, InboundMessage, classify
from touchflow.entrypoints.api.context import Context, context
from touchflow.services.inbound import (
    SENDGRID,
    IngestReport,
    ProviderEvent,
    apply_inbound_message,
    ingest_events,
)

router = APIRouter()
_log = logging.getLogger("touchflow.api.sendgrid")

#: A signed request this far in the future (clock skew) is still accepted.
FUTURE_SKEW_S = 60
#: Bodies above this are refused unread (SendGrid's batches stay far below).
MAX_EVENTS_BODY = 32 * 1024 * 1024
MAX_PARSE_PART = 32 * 1024 * 1024
_EVENT_NAME = re.compile(r"[a-z][a-z_]{0,31}")
_MSG_ID = re.compile(r"<[^<>\s]+>")
_LAST_TIMESTAMP = 4102444800  # 2100-01-01: later "timestamps" are garbage
_MAX_REPORTED_ERRORS = 20


class SignatureVerifier:
    """Checks the Event Webhook signature with the sendgrid library; the key is parsed once."""

    def __init__(self, public_key: str, max_age_s: int) -> None:
        self._helper = EventWebhook()
        # Parsing the PEM costs more than verifying: once per process, not per request.
        self.key = self._helper.convert_public_key_to_ecdsa(public_key.strip())
        self.max_age_s = max_age_s

    def problem(
        self, body: bytes, signature: str | None, timestamp: str | None, now: datetime
    ) -> str | None:
        """Why the request must be refused, or None when it is authentic and fresh."""
        if not signature or not timestamp:
            return "missing signature headers"
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            return "malformed timestamp"
        age = now.timestamp() - int(timestamp)
        if age > self.max_age_s:
            return f"stale: signed {age:.0f} s ago (limit {self.max_age_s} s)"
        if age < -FUTURE_SKEW_S:
            return "timestamp in the future"
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            if text is not None:
                ok = self._helper.verify_signature(text, signature, timestamp, self.key)
            else:
                # The helper takes text; the signature covers bytes, so verify those.
                self.key.verify(
                    base64.b64decode(signature),
                    timestamp.encode() + body,
                    ec.ECDSA(hashes.SHA256()),
                )
                ok = True
        except (InvalidSignature, binascii.Error, ValueError, TypeError):
            ok = False
        return None if ok else "bad signature"


def _verifier(ctx: Context) -> SignatureVerifier | str:
    """The verifier, or why there is none (not configured, unreadable key)."""
    hit = ctx.cache.get("sendgrid_verifier")
    if hit is None:
        sg = ctx.settings.sendgrid
        if not sg.webhook_public_key:
            hit = "TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY is not set"
        else:
            try:
                hit = SignatureVerifier(sg.webhook_public_key, sg.webhook_max_age_s)
            except (ValueError, TypeError) as exc:
                hit = f"TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY is not a valid EC public key: {exc}"
        ctx.cache["sendgrid_verifier"] = hit
    return hit


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_event_batch(body: bytes) -> tuple[list[ProviderEvent], list[dict[str, Any]]]:
    """The events of a batch and one error per malformed item.

    Raises ``ValueError`` when the body is not a JSON array at all.
    """
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError("body is not a JSON array of events")
    out: list[ProviderEvent] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(data):
        ev = _event(item)
        if isinstance(ev, str):
            errors.append({"index": i, "error": ev})
        else:
            out.append(ev)
    return out, errors


def _event(item: Any) -> ProviderEvent | str:
    """One SendGrid event, or what is wrong with it."""
    if not isinstance(item, dict):
        return "not an object"
    sg_id = item.get("sg_event_id")
    if not isinstance(sg_id, str) or not sg_id.strip():
        return "sg_event_id missing or not a string"
    name = item.get("event")
    if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name):
        return "event missing or not an event name"
    ts = item.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 <= ts < _LAST_TIMESTAMP:
        return "timestamp missing or not a Unix time"
    touch_key = item.get("touch_key")
    email = item.get("email")
    return ProviderEvent(
        provider_event_id=f"sg:{sg_id}",
        source=SENDGRID,
        type=name,
        occurred_at=datetime.fromtimestamp(ts, UTC),
        touch_key=touch_key if isinstance(touch_key, str) else None,
        email=email.strip().lower() if isinstance(email, str) else None,
        payload=item,
    )


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
    verifier = _verifier(ctx)
    if isinstance(verifier, str):
        _log.error("refusing SendGrid events: %s", verifier)
        return JSONResponse({"detail": verifier}, status_code=503)
    body = await _read_body(request, MAX_EVENTS_BODY)
    if body is None:
        return JSONResponse({"detail": "body too large"}, status_code=413)
    signature = request.headers.get(EventWebhookHeader.SIGNATURE)
    timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP)
    return await run_in_threadpool(_process_events, ctx, verifier, body, signature, timestamp)


def _process_events(
    ctx: Context,
    verifier: SignatureVerifier,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
) -> JSONResponse:
    now = ctx.now()
    problem = verifier.problem(body, signature, timestamp, now)
    if problem is not None:
        _log.warning("refused SendGrid event batch: %s", problem)
        return JSONResponse({"detail": f"signature check failed: {problem}"}, status_code=403)
    try:
        batch, errors = parse_event_batch(body)
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
    try:
        message = await run_in_threadpool(_message_from_form, fields, now)
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    try:
        classification = classify(message)
    except Exception:  # a classifier bug must not lose a reply: treat it as one
        _log.exception("classify failed for %s; treating it as a reply", message.message_id)
        classification = Classification("reply", evidence="classifier failed")

    def work(conn: Connection) -> Any:
        return apply_inbound_message(
            conn, ctx.runtimes, message, classification, now, source="sendgrid_parse"
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


def _message_from_form(fields: dict[str, str], now: datetime) -> InboundMessage:
    """An InboundMessage from Inbound Parse's fields (parsed or raw)."""
    raw = fields.get("email")
    if raw:
        from touchflow.adapters.imap.replies import (
            parse_message,  # written alongside; lazy on purpose
        )

        try:
            return parse_message(raw.encode("utf-8", "replace"), fallback_date=now)
        except Exception as exc:  # any parser failure is a bad message, not a server error
            raise ValueError(f"unreadable raw message: {exc}") from None
    headers_text = fields.get("headers", "")
    try:
        parsed = HeaderParser().parsestr(headers_text)
        headers = {k: str(v) for k, v in parsed.items()}
    except Exception as exc:  # the stdlib parser is lenient; this is belt and braces
        raise ValueError(f"unreadable headers: {exc}") from None
    lower = {k.lower(): v for k, v in headers.items()}
    from_addr = parseaddr(fields.get("from") or lower.get("from", ""))[1].strip().lower()
    if not from_addr:
        try:
            envelope = json.loads(fields.get("envelope") or "{}")
            from_addr = str(envelope.get("from") or "").strip().lower()
        except (ValueError, AttributeError, RecursionError):
            from_addr = ""
    if not from_addr:
        raise ValueError("no sender: neither 'from', the headers nor the envelope name one")
    ids = _MSG_ID.findall(lower.get("message-id", ""))
    in_reply_to = _MSG_ID.findall(lower.get("in-reply-to", ""))
    text = fields.get("text") or _html_to_text(fields.get("html", ""))
    return InboundMessage(
        message_id=ids[0] if ids else None,
        from_addr=from_addr,
        subject=fields.get("subject") or lower.get("subject", ""),
        text=text,
        received_at=now,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(_MSG_ID.findall(lower.get("references", ""))),
        to_addrs=tuple(a.lower() for _, a in getaddresses([fields.get("to", "")]) if a),
        headers=headers,
    )


_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.S | re.I)
_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\b[^>]*>", re.I)


def _html_to_text(markup: str) -> str:
    """Plain text of an HTML body: good enough to classify, not to display."""
    if not markup:
        return ""
    text = _BREAKS.sub("\n", markup)
    text = _TAGS.sub("", text)
    lines = (" ".join(line.split()) for line in html.unescape(text).splitlines())
    return "\n".join(line for line in lines if line)
