"""Speed to lead: ``POST /leads`` (``X-API-Key``), idempotent on ``Idempotency-Key``.

Body: a JSON object of lead fields (``email`` required; ``first_name``,
``last_name``, ``title``, ``company``, ``website``/``domain``, ``phone``,
``country``, ``timezone`` and any extra field). The lead is validated,
normalized, stored, enriched, scored, routed, enrolled in the inbound cadence
and queued for the CRM in one transaction (:mod:`touchflow.services.leads`); then the
CRM push is attempted right away (a CRM that is down leaves it queued for the
``sync-crm`` flow) and the AE is notified in the background.

Answers: 201 a new lead, 200 a known one (or the same key and body again),
with the decision: ``{"email", "score", "grade", "lifecycle", "reasons",
"assignee", "rule", "sla_due_at", "cadence", "enrolled", "crm":
"pushed"|"queued"|"off"}``; 401 bad key; 409 the same key still in flight;
422 a lead that cannot be taken (with why) or a key reused with another body;
503 not configured. Errors are problem documents. The key's rules (the IETF
Idempotency-Key draft; 24 hours) are in :mod:`touchflow.services.leads`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from touchflow.entrypoints.api.context import Context, api_key_refusal, context
from touchflow.entrypoints.api.contract import errors
from touchflow.entrypoints.api.problems import problem
from touchflow.errors import ConnectorError, IdempotencyConflict, LeadRejected, StoreUnavailable
from touchflow.services.crm_sync import push_leads_now, team_owner_ids
from touchflow.services.leads import (
    LEAD_LIMITS,
    LeadDecision,
    begin_request,
    payload_hash,
    process_lead,
    release_request,
    save_inbound_version,
)

router = APIRouter()
_log = logging.getLogger("touchflow.api")
_MAX_BODY = 64 * 1024
_MAX_FIELDS, _MAX_VALUE = LEAD_LIMITS


# The route reads the body itself (size limit first, then one JSON object) and
# services.leads.process_lead validates and normalizes it: LeadIn documents the
# request in /openapi.json, it does not parse it, so /leads answers as before.
class LeadIn(BaseModel):
    """A lead from a form or another system. Only `email` is required; any other
    field (text or a number) is kept on the prospect as a custom field."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            # Any other field: text, a finite number, yes/no, or null (ignored).
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": _MAX_VALUE},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
            "maxProperties": _MAX_FIELDS,
            "examples": [
                {
                    "email": "jordan.lee@northwind-analytics.com",
                    "first_name": "Jordan",
                    "last_name": "Lee",
                    "title": "VP Revenue Operations",
                    "company": "Northwind Analytics",
                    "website": "https://northwind-analytics.com",
                    "phone": "+14155550100",
                    "country": "US",
                    "timezone": "America/Los_Angeles",
                    "employees": 850,
                    "utm_source": "webinar",
                }
            ],
        },
    )

    email: str = Field(
        max_length=320, description="Required; the lead's identity (normalized, deduplicated)."
    )
    first_name: str | None = Field(default=None, max_length=_MAX_VALUE)
    last_name: str | None = Field(default=None, max_length=_MAX_VALUE)
    title: str | None = Field(
        default=None, max_length=_MAX_VALUE, description="Job title: seniority and department."
    )
    company: str | None = Field(default=None, max_length=_MAX_VALUE)
    website: str | None = Field(
        default=None, max_length=_MAX_VALUE, description="Or `domain`: matches the account."
    )
    domain: str | None = Field(default=None, max_length=_MAX_VALUE)
    phone: str | None = Field(
        default=None, max_length=_MAX_VALUE, description="E.164, or local with `country`."
    )
    country: str | None = Field(
        default=None, max_length=_MAX_VALUE, description="ISO 3166 alpha-2, e.g. DE."
    )
    timezone: str | None = Field(
        default=None, max_length=_MAX_VALUE, description="IANA zone, e.g. Europe/Berlin."
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Same as the Idempotency-Key header (1-200 characters).",
    )


class LeadAnswer(BaseModel):
    """What touchflow did with the lead: its score, owner, cadence and CRM state."""

    email: str
    prospect_id: int
    new: bool
    score: int | None = None
    grade: str | None = None
    lifecycle: str | None = None
    reasons: list[str] = []
    assignee: str | None = Field(default=None, description="The AE the lead was routed to.")
    rule: str | None = Field(default=None, description="The routing rule that chose them.")
    sla_due_at: str | None = None
    cadence: str | None = None
    enrolled: bool = False
    crm_queued: bool = False
    warnings: list[str] = []
    duplicate: bool = False
    crm: str = Field(description="pushed, queued (the sync-crm flow retries) or off.")


def _notify(ctx: Context, decision: LeadDecision) -> None:
    if ctx.notifier is None or not decision.assignee or "@" not in decision.assignee:
        return
    text = (
        f"New inbound lead {decision.email}: score {decision.score} ({decision.grade}, "
        f"{decision.lifecycle}), routed by {decision.rule}; accept by {decision.sla_due_at}."
    )
    try:
        ctx.notifier.notify(decision.assignee, text)
    except ConnectorError as exc:  # the lead is routed and in the CRM queue either way
        _log.warning("could not notify %s of %s: %s", decision.assignee, decision.email, exc)


#: Leads processed at once per API process (see post_lead).
CONCURRENT_LEADS = 4
#: How long the outbox leaves a lead to the API's own push before a drain may push it.
PUSH_HOLD = timedelta(minutes=2)


def _take(
    ctx: Context, body: dict[str, Any], now: datetime, key: str | None
) -> tuple[LeadDecision, str]:
    """Process the lead in one transaction, then push it to the CRM; in a worker thread.

    Returns the decision and the CRM state for the answer: ``pushed``, ``queued``
    (the CRM failed; the ``sync-crm`` drain retries) or ``off``.
    """
    services = ctx.leads
    assert services is not None
    if services.inbound is not None and not services.inbound_saved:
        # Once per process: every lead enrolls in this cadence version.
        ctx.transaction_sync(lambda conn: save_inbound_version(conn, services, now))
        services.inbound_saved = True
    if key:
        fingerprint = payload_hash(body)
        earlier = ctx.transaction_sync(lambda conn: begin_request(conn, key, fingerprint, now))
        if earlier is not None:
            return earlier, "queued" if earlier.crm_queued else "off"
    hold = PUSH_HOLD if ctx.crm is not None else None
    try:
        decision = ctx.transaction_sync(
            lambda conn: process_lead(
                conn, services, body, now, idempotency_key=key, push_hold=hold
            )
        )
    except BaseException:
        if key:
            _release(ctx, key)
        raise
    if not decision.crm_queued:
        return decision, "off"
    if ctx.crm is None or decision.duplicate or not decision.crm_rows:
        return decision, "queued"
    team = services.router.team if services.router is not None else None
    report = push_leads_now(
        ctx.engine, ctx.crm, decision.crm_rows, now, owner_ids=team_owner_ids(team)
    )
    return decision, "pushed" if report.pushed else "queued"


def _release(ctx: Context, key: str) -> None:
    try:
        ctx.transaction_sync(lambda conn: release_request(conn, key))
    except StoreUnavailable as exc:  # the claim is dropped as abandoned after a minute
        _log.warning("could not release Idempotency-Key %r: %s", key, exc)


def _slots(ctx: Context) -> asyncio.Semaphore:
    slots = ctx.cache.get("lead_slots")
    if slots is None:
        slots = ctx.cache["lead_slots"] = asyncio.Semaphore(CONCURRENT_LEADS)
    return slots


@router.post(
    "/leads",
    summary="Take an inbound lead: score, route, enroll, push to the CRM",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": LeadIn.model_json_schema()}},
        },
        "parameters": [
            {"name": "X-API-Key", "in": "header", "required": True, "schema": {"type": "string"}},
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "A retry with the same key and body gets the first answer "
                "(for 24 hours); the same key with another body gets 422, and while the "
                "first request is still processed 409.",
            },
        ],
    },
    responses={
        201: {"model": LeadAnswer, "description": "A new lead."},
        200: {"model": LeadAnswer, "description": "A known lead, or the same key again."},
        **errors(
            {
                401: "A missing or wrong X-API-Key.",
                409: "A request with this Idempotency-Key is still being processed "
                "(code request_in_flight; retry after Retry-After seconds).",
                413: "A body over 64 KiB.",
                422: "A lead that cannot be taken (code says why), an Idempotency-Key of "
                "0 or over 200 characters, or one reused with another body "
                "(code idempotency_key_reused).",
                503: "Lead intake or TOUCHFLOW_API_KEY is not configured.",
            }
        ),
    },
)
async def post_lead(request: Request, background: BackgroundTasks) -> JSONResponse:
    """Speed to lead: the lead is stored, scored, routed and enrolled in one transaction."""
    ctx = context(request)

    def _error(status: int, detail: str, code: str | None = None) -> JSONResponse:
        return problem(request, status, detail, code=code)

    refusal = api_key_refusal(ctx, request, "leads")
    if refusal is not None:
        return refusal
    if ctx.leads is None:
        return _error(503, "lead intake is not configured")
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        return _error(413, f"a lead is at most {_MAX_BODY} bytes")
    try:
        body: Any = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        return _error(422, "body is not JSON")
    if not isinstance(body, dict):
        return _error(422, "body must be a JSON object of lead fields")
    key = request.headers.get("idempotency-key") or body.get("idempotency_key")
    if isinstance(key, str) and len(key) > 1 and key[0] == key[-1] == '"':
        key = key[1:-1]  # the draft's header is a structured-field string: "8e03978e-..."
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
        return _error(422, "Idempotency-Key must be 1-200 characters")
    now = ctx.now()
    try:
        # Few leads at a time per process: routing locks the fairness ledger, and
        # with dozens of threads competing for the interpreter the lock holder
        # would crawl (a convoy); the rest wait here, cheaply, instead.
        async with _slots(ctx):
            decision, crm = await run_in_threadpool(_take, ctx, body, now, key)
    except LeadRejected as exc:
        return _error(422, str(exc), exc.code)
    except IdempotencyConflict as exc:
        if exc.in_flight:
            return problem(
                request, 409, str(exc), code="request_in_flight", headers={"Retry-After": "1"}
            )
        return _error(422, str(exc), "idempotency_key_reused")
    if not decision.duplicate:
        background.add_task(_notify, ctx, decision)
    status = 201 if decision.new and not decision.duplicate else 200
    return JSONResponse({**decision.as_dict(), "crm": crm}, status_code=status)
