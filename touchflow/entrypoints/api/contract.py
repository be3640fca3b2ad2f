"""The API's contract: the request forms the vendors send, the error answers, docs/openapi.json.

The routes read their bodies themselves (a size limit first, a signature check
over the raw bytes, then the parse), so FastAPI cannot infer the request
bodies; the models here describe them in ``/openapi.json``. The webhook forms
carry the fields the vendors document, and more: Twilio and SendGrid add
fields without notice, so every form allows extra text fields. The forms'
fields have no length bounds here because the app does not refuse long ones
(a signed form is the vendor's; what is stored is cut to its column).

* Twilio (application/x-www-form-urlencoded):
  https://www.twilio.com/docs/messaging/guides/webhook-request (inbound texts),
  https://www.twilio.com/docs/messaging/guides/track-outbound-message-status
  (message status), https://www.twilio.com/docs/voice/twiml#request-parameters
  and https://www.twilio.com/docs/voice/api/call-resource#statuscallback (calls).
* SendGrid: the Event Webhook's JSON array
  (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event)
  and Inbound Parse's multipart form
  (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook).

Every answer of 400 and above is a :class:`~touchflow.entrypoints.api.problems.Problem`;
:func:`install_openapi` makes the document say so for every operation, and
adds the 500 every operation may answer.

``python -m touchflow.entrypoints.api.write_openapi [PATH]`` writes the document
(default ``docs/openapi.json``); ``tests/api/test_contract.py`` fails when the
checked-in copy differs from what the code serves.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from touchflow.entrypoints.api.problems import MEDIA_TYPE, Problem, ValidationItem

#: Bounds every path and query id shares: the store's ids are 32-bit on PostgreSQL.
MAX_ID = 2_147_483_647


def _form(description: str, example: dict[str, str]) -> ConfigDict:
    return ConfigDict(
        extra="allow",
        title=None,
        json_schema_extra={
            "description": description,
            "additionalProperties": {"type": "string"},
            "examples": [example],
        },
    )


class TwilioInboundSms(BaseModel):
    """An inbound text, as Twilio posts it (the fields touchflow reads, among others)."""

    model_config = _form(
        "Twilio's request to the incoming message webhook. MessageSid (or SmsSid) "
        "and From are required; Body's first word may be STOP, START or HELP.",
        {
            "MessageSid": "SM0123456789abcdef0123456789abcdef",
            "AccountSid": "AC0123456789abcdef0123456789abcdef",
            "From": "+12125550101",
            "To": "+12125550100",
            "Body": "STOP",
            "NumMedia": "0",
        },
    )

    MessageSid: str | None = Field(default=None)
    SmsSid: str | None = Field(default=None)
    AccountSid: str | None = Field(default=None)
    MessagingServiceSid: str | None = Field(default=None)
    From: str | None = Field(default=None, description="The sender's number.")
    To: str | None = Field(default=None)
    Body: str | None = Field(default=None)
    NumMedia: str | None = Field(default=None)
    NumSegments: str | None = Field(default=None)


class TwilioMessageStatus(BaseModel):
    """A delivery callback for one of our texts."""

    model_config = _form(
        "Twilio's status callback for an outbound message. MessageSid (or SmsSid) and "
        "MessageStatus (or SmsStatus) are required; ErrorCode 21610 opts the number out.",
        {
            "MessageSid": "SM0123456789abcdef0123456789abcdef",
            "MessageStatus": "delivered",
            "AccountSid": "AC0123456789abcdef0123456789abcdef",
            "To": "+12125550101",
            "From": "+12125550100",
        },
    )

    MessageSid: str | None = Field(default=None)
    SmsSid: str | None = Field(default=None)
    MessageStatus: str | None = Field(
        default=None,
        description="queued, sending, sent, delivered, undelivered, failed, read, ...",
    )
    SmsStatus: str | None = Field(default=None)
    ErrorCode: str | None = Field(default=None)
    AccountSid: str | None = Field(default=None)
    From: str | None = Field(default=None)
    To: str | None = Field(default=None)


class TwilioCallStatus(BaseModel):
    """A progress callback of a click-to-call call."""

    model_config = _form(
        "Twilio's StatusCallback request for a call. CallSid and CallStatus are required.",
        {
            "CallSid": "CA0123456789abcdef0123456789abcdef",
            "CallStatus": "completed",
            "AccountSid": "AC0123456789abcdef0123456789abcdef",
            "CallDuration": "42",
        },
    )

    CallSid: str | None = Field(default=None)
    CallStatus: str | None = Field(
        default=None,
        description="queued, ringing, in-progress, completed, busy, failed, no-answer, canceled.",
    )
    AccountSid: str | None = Field(default=None)
    From: str | None = Field(default=None)
    To: str | None = Field(default=None)
    Direction: str | None = Field(default=None)
    CallDuration: str | None = Field(default=None)


class TwilioTranscriptionEvent(BaseModel):
    """A Real-Time Transcription status callback (``<Start><Transcription statusCallbackUrl>``)."""

    model_config = _form(
        "Twilio's Real-Time Transcription callback. TranscriptionEvent and CallSid are "
        "required; a transcription-content event also needs Track and a numeric SequenceId.",
        {
            "TranscriptionEvent": "transcription-content",
            "CallSid": "CA0123456789abcdef0123456789abcdef",
            "TranscriptionSid": "GT0123456789abcdef0123456789abcdef",
            "Track": "outbound_track",
            "SequenceId": "3",
            "Final": "true",
            "Stability": "0.9",
            "LanguageCode": "en-US",
            "Timestamp": "2026-12-06T10:00:00.000000Z",
            "TranscriptionData": '{"transcript": "what is the price", "confidence": 0.93}',
        },
    )

    TranscriptionEvent: str | None = Field(
        default=None,
        description="transcription-started, transcription-content, transcription-stopped "
        "or transcription-error.",
    )
    CallSid: str | None = Field(default=None)
    TranscriptionSid: str | None = Field(default=None)
    Track: str | None = Field(default=None, description="inbound_track or outbound_track.")
    SequenceId: str | None = Field(default=None, description="Orders a call's callbacks.")
    Final: str | None = Field(default=None, description="true for a final result.")
    Stability: str | None = Field(default=None, description="0 to 1, for partial results.")
    LanguageCode: str | None = Field(default=None)
    Timestamp: str | None = Field(default=None, description="ISO 8601.")
    TranscriptionData: str | None = Field(
        default=None, description='JSON: {"transcript": ..., "confidence": ...}.'
    )


class TwilioVoiceRequest(BaseModel):
    """Twilio's request for TwiML once the SDR answered (the bridge)."""

    model_config = _form(
        "Twilio's voice webhook request; touchflow reads none of its fields (the task id "
        "in the path names the call), it only checks the signature over them.",
        {"CallSid": "CA0123456789abcdef0123456789abcdef", "CallStatus": "in-progress"},
    )

    CallSid: str | None = Field(default=None)
    AccountSid: str | None = Field(default=None)
    From: str | None = Field(default=None)
    To: str | None = Field(default=None)
    CallStatus: str | None = Field(default=None)
    Direction: str | None = Field(default=None)


class SendgridEvent(BaseModel):
    """One event of a SendGrid Event Webhook batch (our custom_args come back as fields)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "email": "ann@acme.example",
                    "timestamp": 1764514800,
                    "event": "bounce",
                    "sg_event_id": "c2c3b7e6-6d0c-4d8f-9e7e-3f1a7c9d4b21",
                    "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                    "type": "bounce",
                    "reason": "550 5.1.1 The email account does not exist",
                    "touch_key": "42-intro-1",
                }
            ]
        },
    )

    email: str | None = Field(default=None, max_length=320)
    timestamp: int | None = Field(default=None, ge=0, le=4_102_444_800, description="Unix time.")
    event: str | None = Field(
        default=None,
        max_length=32,
        description="processed, dropped, delivered, deferred, bounce, open, click, "
        "spamreport, unsubscribe, group_unsubscribe, group_resubscribe.",
    )
    sg_event_id: str | None = Field(default=None, max_length=100, description="The dedupe key.")
    sg_message_id: str | None = Field(default=None, max_length=200)
    type: str | None = Field(default=None, max_length=32, description="bounce or blocked.")
    reason: str | None = Field(default=None, max_length=2000)
    status: str | None = Field(default=None, max_length=16)
    url: str | None = Field(default=None, max_length=2000)
    touch_key: str | None = Field(default=None, max_length=200, description="Our custom_args.")


class SendgridInboundParse(BaseModel):
    """One received email as Inbound Parse posts it (parsed, or raw in ``email``)."""

    model_config = _form(
        "SendGrid Inbound Parse's multipart form. Either the parsed fields (from, to, "
        "subject, text, html, headers) or, with 'send raw', the whole message in email.",
        {
            "from": "Ann <ann@acme.example>",
            "to": "sdr@touchflow.example",
            "subject": "Re: Quick question",
            "text": "Not interested, thanks.",
            "headers": "In-Reply-To: <42-intro-1@touchflow.example>",
        },
    )

    headers: str | None = None
    dkim: str | None = None
    to: str | None = None
    cc: str | None = None
    from_: str | None = Field(default=None, alias="from")
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    sender_ip: str | None = None
    spam_report: str | None = None
    spam_score: str | None = None
    envelope: str | None = Field(default=None, description="JSON: to and from of the SMTP session.")
    charsets: str | None = None
    SPF: str | None = None
    attachments: str | None = Field(default=None, description="How many files are attached.")
    email: str | None = Field(default=None, description="The raw MIME message ('send raw').")


class SkippedEvent(BaseModel):
    """An event of the batch that was not stored, and why."""

    index: int = Field(description="Its position in the batch, from 0.")
    error: str


class EventsAnswer(BaseModel):
    """What a batch of events did."""

    received: int
    stored: int
    duplicates: int
    applied: int
    unmatched: int
    reconciled: int
    malformed: int
    errors: list[SkippedEvent] = Field(description="The first 20 events skipped, and why.")


class InboundAnswer(BaseModel):
    """What a received email did."""

    kind: str = Field(description="reply, out_of_office, unsubscribe, bounce, ...")
    duplicate: bool
    matched: bool
    matched_by: str | None
    ended: int
    paused: int
    resume_at: str | None
    account_paused: int
    account_finished: int


class Health(BaseModel):
    """The database answers."""

    status: str = Field(examples=["ok"])


def errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error answers: each a problem document."""
    return {
        status: {"description": text, "content": {MEDIA_TYPE: {"schema": _PROBLEM_REF}}}
        for status, text in described.items()
    }


def body(media_type: str, schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """An ``openapi_extra`` request body of ``media_type`` described by ``schema``."""
    return {"requestBody": {"required": required, "content": {media_type: {"schema": schema}}}}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema inline (no $defs), for ``openapi_extra``."""
    return model.model_json_schema(by_alias=True)


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "The database answers."},
    **errors({503: "The database is unavailable."}),
}
_UNEXPECTED = "An unexpected error: logged with the request_id, counted in /metrics."


#: ``openapi_extra`` marker of a route whose parameters take any value (no 422 exists).
NO_VALIDATION_ERROR = "x-touchflow-no-validation-error"


def _problems_everywhere(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas["ValidationItem"] = ValidationItem.model_json_schema()
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if operation.pop(NO_VALIDATION_ERROR, False):
                # FastAPI lists a 422 for every route with parameters, even one
                # whose parameters take any value: such a route never answers it.
                responses.pop("422", None)
            for status, answer in responses.items():
                # An HTML page for people (the unsubscribe link) keeps its own content.
                if int(status) >= 400 and set(answer.get("content", {})) <= {"application/json"}:
                    description = answer.get("description", "")
                    if status == "422" and description == "Validation Error":
                        description = "A path, query or header value out of bounds."
                    answer["description"] = description
                    answer["content"] = {MEDIA_TYPE: {"schema": _PROBLEM_REF}}
            responses.setdefault(
                "500",
                {"description": _UNEXPECTED, "content": {MEDIA_TYPE: {"schema": _PROBLEM_REF}}},
            )
            for answer in responses.values():
                answer.setdefault("headers", {})["X-Request-ID"] = {
                    "description": "This request's id (the caller's own when it sent a sane one).",
                    "schema": {"type": "string", "maxLength": 64},
                }


def install_openapi(app: FastAPI) -> None:
    """Serve the document with problem details for every error answer."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            _problems_everywhere(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def render(app: FastAPI) -> str:
    """The document as checked in: sorted keys, two-space indents, a final newline."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
