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
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from touchflow.adapters.mime import html_to_text, message_ids, parse_message
from touchflow.domain.events import Effect, ProviderEvent
from touchflow.domain.replies import InboundMessage
from touchflow.errors import ConfigError

__all__ = [
    "SendgridInboundParse",
    "SendgridWebhooks",
    "SignatureVerifier",
    "message_from_form",
    "parse_event_batch",
]

#: A signed request this far in the future (clock skew) is still accepted.
FUTURE_SKEW_S = 60
_EVENT_NAME = re.compile(r"[a-z][a-z_]{0,31}")
_LAST_TIMESTAMP = 4102444800  # 2100-01-01: later "timestamps" are garbage

#: SendGrid events that end enrollments, and how.
_EXITS: dict[str, Effect] = {
    "bounce": "bounce",
    "dropped": "bounce",
    "spamreport": "unsubscribe",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
#: Stored under the names ``touched(step, event)`` conditions test.
_STORED = {"open": "opened", "click": "clicked"}
#: Events that prove SendGrid accepted the message (they settle an ``unknown`` touch).
_ACCEPTED = frozenset({"processed", "delivered", "deferred", "open", "click", "bounce",
                       "dropped", "spamreport", "unsubscribe", "group_unsubscribe"})  # fmt: skip
SOURCE = "sendgrid"


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
    if name == "bounce" and str(item.get("type", "bounce")).lower() == "blocked":
        stored, effect = "blocked", None  # a soft bounce: the next message may get through
    else:
        stored, effect = _STORED.get(name, name), _EXITS.get(name)
    return ProviderEvent(
        provider_event_id=f"sg:{sg_id}",
        source=SOURCE,
        type=stored,
        occurred_at=datetime.fromtimestamp(ts, UTC),
        effect=effect,
        accepted=name in _ACCEPTED,
        touch_key=touch_key if isinstance(touch_key, str) else None,
        email=email.strip().lower() if isinstance(email, str) else None,
        payload=item,
    )


def message_from_form(fields: Mapping[str, str], now: datetime) -> InboundMessage:
    """An InboundMessage from Inbound Parse's fields (parsed or raw); ValueError if unreadable."""
    raw = fields.get("email")
    if raw:
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
    ids = message_ids(lower.get("message-id", ""))
    in_reply_to = message_ids(lower.get("in-reply-to", ""))
    text = fields.get("text") or html_to_text(fields.get("html", ""))
    return InboundMessage(
        message_id=ids[0] if ids else None,
        from_addr=from_addr,
        subject=fields.get("subject") or lower.get("subject", ""),
        text=text,
        received_at=now,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(message_ids(lower.get("references", ""))),
        to_addrs=tuple(a.lower() for _, a in getaddresses([fields.get("to", "")]) if a),
        headers=headers,
    )


class SendgridWebhooks:
    """SendGrid's Event Webhook and Inbound Parse, in touchflow's terms.

    ``public_key`` is the Event Webhook verification key (base64 DER
    SubjectPublicKeyInfo); a key that does not parse is a
    :class:`~touchflow.errors.ConfigError` naming the setting.
    """

    def __init__(self, public_key: str, max_age_s: int) -> None:
        try:
            self._verifier = SignatureVerifier(public_key, max_age_s)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY is not a valid EC public key: {exc}"
            ) from None

    def refusal(self, body: bytes, headers: Mapping[str, str], now: datetime) -> str | None:
        """Why the Event Webhook request must be refused, or None when authentic and fresh."""
        return self._verifier.problem(
            body,
            headers.get(EventWebhookHeader.SIGNATURE),
            headers.get(EventWebhookHeader.TIMESTAMP),
            now,
        )

    def parse_events(self, body: bytes) -> tuple[list[ProviderEvent], list[dict[str, Any]]]:
        """See :func:`parse_event_batch`."""
        return parse_event_batch(body)


class SendgridInboundParse:
    """SendGrid Inbound Parse: one received email per form post (no signature, no key)."""

    def inbound_message(self, fields: Mapping[str, str], now: datetime) -> InboundMessage:
        """See :func:`message_from_form`."""
        return message_from_form(fields, now)
