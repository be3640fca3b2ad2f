"""Call transcripts in: Twilio Real-Time Transcription callbacks and Twilio Media Streams.

Both sources end in the same port (:class:`~touchflow.ports.TranscriptStream`,
:class:`touchflow.services.call_transcripts.CallTranscripts`, one per app in
``ctx.cache["call_transcripts"]``; the live guidance hub sets its ``on_new``).

* ``POST /webhooks/twilio/transcription?task_id=&consent=``: checked with
  ``X-Twilio-Signature`` like every Twilio webhook (403 and nothing stored
  otherwise), read by the Twilio adapter, recorded idempotently.
* ``WS /media-stream``: the upgrade must carry ``X-Twilio-Signature`` over the
  ``wss://`` URL Twilio was given (``TOUCHFLOW_TRANSCRIPTS__MEDIA_STREAM_URL``);
  a request without a valid one is refused before the socket is accepted (HTTP
  403), so nothing is read or stored. The audio goes through the offline
  recogniser; utterances are recorded as final segments as they complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from touchflow import bootstrap
from touchflow.entrypoints.api.context import Context, context
from touchflow.entrypoints.api.contract import MAX_ID, TwilioTranscriptionEvent
from touchflow.entrypoints.api.problems import problem
from touchflow.entrypoints.api.transcript_plan import TRANSCRIPTION_PATH
from touchflow.entrypoints.api.twilio_hooks import twilio_docs, verified_twilio
from touchflow.errors import StoreUnavailable, TouchflowError
from touchflow.ports import TranscriptEvent
from touchflow.services.call_transcripts import CallTranscripts
from touchflow.services.transcript_writer import TranscriptWriter

router = APIRouter()
_log = logging.getLogger("touchflow.api.transcripts")
#: A Media Stream message is a few KiB (20 ms of audio); more is not Twilio.
MAX_MESSAGE = 64 * 1024


def transcript_stream(ctx: Context) -> CallTranscripts:
    """The app's transcript port (made on first use); a call's stop summarises it."""
    stream = ctx.cache.get("call_transcripts")
    if stream is None:
        stream = ctx.cache["call_transcripts"] = CallTranscripts(
            ctx.engine, source="twilio", on_ended=_after_call(ctx)
        )
    return stream  # type: ignore[no-any-return]


def transcript_writer(ctx: Context) -> TranscriptWriter:
    """The app's group-commit writer over :func:`transcript_stream` (made on first use).

    Transcription callbacks are recorded through it: one transaction for every callback
    that arrived while the previous one committed (``touchflow.services.transcript_writer``).
    """
    writer = ctx.cache.get("transcript_writer")
    if writer is None:
        writer = ctx.cache["transcript_writer"] = TranscriptWriter(
            ctx.engine, transcript_stream(ctx)
        )
    return writer  # type: ignore[no-any-return]


def _after_call(ctx: Context) -> Callable[[list[str], datetime], object] | None:
    """The after-call summary of calls that stopped; None without ``config/guidance.yaml``.

    A summary that fails is logged and left to the sweep: the callback is still a 204
    (Twilio would only redeliver a stop that is no news by then).
    """
    try:
        summaries = bootstrap.call_summaries(ctx.settings, ctx.engine)
    except TouchflowError as exc:
        _log.error("no after-call summaries: %s", exc)
        return None
    return None if summaries is None else summaries.on_ended


async def _publish(ctx: Context, events: list[TranscriptEvent]) -> list[TranscriptEvent]:
    """Record ``events`` (the group-commit writer): the new ones, once committed."""
    if not events:
        return []
    return await transcript_writer(ctx).submit_async(events)


@router.post(
    TRANSCRIPTION_PATH,
    summary="A Real-Time Transcription callback (Twilio)",
    status_code=204,
    **twilio_docs(
        TwilioTranscriptionEvent,
        {204: {"description": "Recorded (or a known duplicate)."}},
        "TranscriptionEvent and CallSid are required (and Track and a numeric SequenceId "
        "for transcription-content), TranscriptionData must be a JSON object.",
    ),
)
async def twilio_transcription(
    request: Request,
    task_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="The call task (our callback URL).")
    ] = None,
    consent: Annotated[
        str | None,
        Query(max_length=16, description="The consent mode the call runs under (our URL)."),
    ] = None,
) -> Response:
    """One transcription event of a call: started, a partial or final segment, stopped, error."""
    ctx = context(request)
    verified = await verified_twilio(request, ctx)
    if isinstance(verified, Response):
        return verified
    webhook, items = verified
    events = webhook.transcription_events(items, ctx.now(), task_id=task_id, consent=consent)
    if isinstance(events, str):
        return problem(request, 400, events)
    # Answered once the events (and the cards they fired) are committed; the cards
    # reached the screens when they fired, before that commit.
    await _publish(ctx, events)
    return Response(status_code=204)


class TranscriptionFastPath:
    """Pure ASGI: ``POST /webhooks/twilio/transcription`` without FastAPI's routing.

    Live guidance gets a callback per segment (hundreds a second); routing it through
    every route's match and FastAPI's dependency resolution cost about a third of its CPU.
    This calls the same route function (:func:`twilio_transcription`: one implementation)
    when the query string is one the route would accept; anything else (a malformed
    ``task_id``, another method or path) goes on to the app, which answers as documented.
    A store error is answered 503 here, as the app's handlers would.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == TRANSCRIPTION_PATH
            and scope["method"] == "POST"
        ):
            query = _query(scope.get("query_string", b""))
            if query is not None:
                request = Request(scope, receive)
                try:
                    response = await twilio_transcription(request, *query)
                except (StoreUnavailable, SQLAlchemyError, RuntimeError) as exc:
                    _log.error("transcription callback not recorded: %s", exc)
                    response = problem(
                        request, 503, "store unavailable, retry later", code="store_unavailable"
                    )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _query(raw: bytes) -> tuple[int | None, str | None] | None:
    """``(task_id, consent)`` when the route's query rules hold; None: let FastAPI answer."""
    if not raw:
        return None, None
    task_id: int | None = None
    consent: str | None = None
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name == "task_id" and task_id is None and value.isascii() and value.isdigit():
            task_id = int(value)
            if not 1 <= task_id <= MAX_ID:
                return None
        elif name == "consent" and consent is None and len(value) <= 16:
            consent = value
        else:
            return None
    return task_id, consent


def _stream_url(ctx: Context, websocket: WebSocket) -> str:
    url = bootstrap.media_stream_url(ctx.settings)
    if websocket.url.query:
        url += "?" + websocket.url.query
    return url


@router.websocket("/media-stream")
async def media_stream(websocket: WebSocket) -> None:
    """A Twilio Media Stream (``<Start><Stream>``): audio in, transcript segments recorded."""
    ctx: Context = websocket.app.state.touchflow
    webhook = ctx.adapter("messaging_webhook", bootstrap.messaging_webhook)
    if isinstance(webhook, str) or not webhook.authentic(
        _stream_url(ctx, websocket), [], websocket.headers
    ):
        _log.warning("refused a Media Stream upgrade: bad or missing signature")
        await websocket.close(code=1008)  # before accept: the upgrade gets HTTP 403
        return
    await websocket.accept()
    reader = bootstrap.media_stream_transcriber(ctx.settings, ctx.now)
    stopped = False
    try:
        while not stopped:
            raw = await websocket.receive_text()
            if len(raw) > MAX_MESSAGE:
                raise ValueError("a Media Stream message over 64 KiB")
            msg: Any = json.loads(raw)
            if not isinstance(msg, dict):
                raise ValueError("a Media Stream message is a JSON object")
            stopped = msg.get("event") == "stop"
            await _publish(ctx, await run_in_threadpool(reader.message, msg))
    except WebSocketDisconnect:
        # Dropped mid-call: keep what was heard; a reconnect may go on.
        await _publish(ctx, await run_in_threadpool(reader.finish))
        return
    except ValueError as exc:  # not JSON, not a stream message
        _log.warning("closing a Media Stream: %s", exc)
        await _publish(ctx, await run_in_threadpool(reader.finish))
        await websocket.close(code=1003)
        return
    await websocket.close()
