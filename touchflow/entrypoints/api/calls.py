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
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from touchflow.domain.phones import to_e164
from touchflow.entrypoints.api.context import api_key_refusal, context
from touchflow.entrypoints.api.contract import MAX_ID, body, errors, model_schema
from touchflow.entrypoints.api.problems import problem
from touchflow.errors import (
    CallNotAllowed,
    CallNotPossible,
    ConnectorError,
    RetryableError,
    TaskNotFound,
)
from touchflow.services.calls import place_call

router = APIRouter()
_MAX_BODY = 4096


class CallIn(BaseModel):
    """Whom to ring first, and the caller id to show."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"agent_number": "+14155550100"}]})

    agent_number: str = Field(
        min_length=1, max_length=32, description="The SDR's phone, rung first (E.164)."
    )
    from_number: str | None = Field(
        default=None,
        max_length=32,
        description="Caller id; default TOUCHFLOW_TWILIO__FROM_NUMBER, then the sender's phone.",
    )


class CallAnswer(BaseModel):
    """The call the provider placed."""

    call_sid: str
    task_id: int


TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The call task's id.")]


@router.post(
    "/tasks/{task_id}/call",
    summary="Click-to-call: ring the SDR, then bridge them to the prospect",
    openapi_extra={
        **body("application/json", model_schema(CallIn)),
        "parameters": [
            {"name": "X-API-Key", "in": "header", "required": True, "schema": {"type": "string"}}
        ],
    },
    responses={
        200: {"model": CallAnswer, "description": "The call is placed."},
        **errors(
            {
                401: "A missing or wrong X-API-Key.",
                404: "No such task.",
                409: "Not now: the task is closed, the person opted out or is suppressed, "
                "or it is outside 08:00-21:00 in their time zone.",
                413: "A body over 4 KiB.",
                422: "Never as it is: not a call task, no phone or time zone, bad numbers, "
                "a body that is not the JSON object above.",
                502: "The provider refused the call.",
                503: "No API key or dialer configured, or the provider is unavailable.",
            }
        ),
    },
)
async def call_task(task_id: TaskId, request: Request) -> JSONResponse:
    """Ring the SDR's phone; the provider then fetches the bridge TwiML to dial the prospect."""
    ctx = context(request)

    def _error(status: int, detail: str) -> JSONResponse:
        return problem(request, status, detail)

    refusal = api_key_refusal(ctx, request, "calls")
    if refusal is not None:
        return refusal
    if ctx.dialer is None:
        return _error(503, "no dialer configured (Twilio voice)")
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        return _error(413, f"a call request is at most {_MAX_BODY} bytes")
    try:
        data: Any = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        return _error(422, "body is not JSON")
    if not isinstance(data, dict):
        return _error(422, "body must be a JSON object")
    agent, sender = data.get("agent_number"), data.get("from_number")
    settings = ctx.settings
    sender = sender or settings.twilio.from_number or settings.sender.phone
    if not isinstance(agent, str) or not agent or len(agent) > 32:
        return _error(422, "agent_number is required: the phone to ring first (E.164)")
    if not isinstance(sender, str) or not sender or len(sender) > 32:
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
