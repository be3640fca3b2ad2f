"""Click-to-call: ``POST /tasks/{task_id}/call`` with ``X-API-Key``.

Body (JSON): ``{"agent_number": "+14155550100", "from_number": "+1..."}``;
``from_number`` defaults to ``TOUCHFLOW_TWILIO__FROM_NUMBER``, then the
sender's phone. The provider rings the agent, then fetches
``/twilio/voice/bridge/{task_id}`` to dial the prospect; progress comes back
on ``/webhooks/twilio/call-status?task_id=...``.

Answers: 200 ``{"call_sid": ...}``; 401 bad key; 503 no key or no dialer
configured; 404 no such task; 409 not now (task closed, opted out,
suppressed, outside 08:00-21:00 local); 422 never as it is (not a call task,
no phone, no time zone, bad numbers); 502/503 the provider failed.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from touchflow.domain.phones import to_e164
from touchflow.entrypoints.api.context import api_key_refusal, context
from touchflow.errors import (
    CallNotAllowed,
    CallNotPossible,
    ConnectorError,
    RetryableError,
    TaskNotFound,
)
from touchflow.services.calls import place_call

router = APIRouter()


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


@router.post("/tasks/{task_id}/call")
async def call_task(task_id: int, request: Request) -> JSONResponse:
    ctx = context(request)
    refusal = api_key_refusal(ctx, request, "calls")
    if refusal is not None:
        return refusal
    if ctx.dialer is None:
        return _error(503, "no dialer configured (Twilio voice)")
    try:
        body: Any = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError):
        return _error(422, "body is not JSON")
    if not isinstance(body, dict):
        return _error(422, "body must be a JSON object")
    agent, sender = body.get("agent_number"), body.get("from_number")
    settings = ctx.settings
    sender = sender or settings.twilio.from_number or settings.sender.phone
    if not isinstance(agent, str) or not agent:
        return _error(422, "agent_number is required: the phone to ring first (E.164)")
    if not isinstance(sender, str) or not sender:
        return _error(422, "from_number is required (or set TOUCHFLOW_TWILIO__FROM_NUMBER)")
    try:
        agent, sender = to_e164(agent), to_e164(sender)
    except ValueError as exc:
        return _error(422, str(exc))
    base = settings.public_url.rstrip("/")
    now = ctx.now()
    dialer = ctx.dialer

    try:
        # Checks and records, dials after the commit; never rerun (a rerun could ring twice).
        sid = await run_in_threadpool(
            place_call,
            ctx.engine,
            dialer,
            task_id,
            agent_number=agent,
            from_number=sender,
            twiml_url=f"{base}/twilio/voice/bridge/{task_id}",
            status_callback_url=f"{base}/webhooks/twilio/call-status?task_id={task_id}",
            now=now,
        )
    except TaskNotFound as exc:
        return _error(404, str(exc))
    except CallNotAllowed as exc:
        return _error(409, str(exc))
    except CallNotPossible as exc:
        return _error(422, str(exc))
    except RetryableError as exc:
        return _error(503, str(exc))
    except ConnectorError as exc:
        return _error(502, str(exc))
    return JSONResponse({"call_sid": sid, "task_id": task_id})
