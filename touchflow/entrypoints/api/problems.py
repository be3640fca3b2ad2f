"""One error format for every answer that is not a success: RFC 9457 problem details.

Every error the API gives (a refused signature, a bad body, an unknown route,
the store down, a bug) is ``application/problem+json``::

    {"type": "urn:touchflow:problem:validation", "title": "Unprocessable Content",
     "status": 422, "detail": "agent_number is required", "instance": "/tasks/7/call",
     "request_id": "3f2c...", "code": "bad_email", "errors": [...]}

``type`` is a URN naming the kind of problem (``about:blank`` when the status
says it all), ``code`` a short machine name where the route has one (the lead
rejections keep the codes they always had), ``errors`` the field-by-field
list of a validation failure. ``request_id`` is also the ``X-Request-ID``
header of every answer and is in the log line of every 5xx, so a report from a
caller finds its log entry.

:class:`ProblemMiddleware` is the catch-all: an exception no route handled
becomes a 500 problem document with no traceback in it, is logged with its
request id and traceback, and is counted in ``touchflow_api_unhandled_errors_total``
(``GET /metrics``, docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_log = logging.getLogger("touchflow.api")

MEDIA_TYPE = "application/problem+json"
#: A caller's own X-Request-ID is kept when it looks like an id (and cannot forge log lines).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Type URIs: a URN per kind of problem (RFC 9457 section 3.1.1; not meant to be fetched).
_TYPE_PREFIX = "urn:touchflow:problem:"


class ValidationItem(BaseModel):
    """One field that failed validation."""

    loc: list[str | int] = Field(description="Where: body, query, path or header, then names.")
    msg: str
    type: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details, ``application/problem+json``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:touchflow:problem:lead_rejected",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "email: not an email address",
                    "instance": "/leads",
                    "request_id": "0b6f6c1f3e0d4a55a1c4f1e0b2a9d7c3",
                    "code": "invalid_email",
                }
            ]
        },
    )

    type: str = Field(
        default="about:blank", description="A URI naming the kind of problem.", max_length=200
    )
    title: str = Field(description="The status code's phrase.", max_length=200)
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong with this request, for a human.")
    instance: str = Field(description="The request's path.")
    request_id: str = Field(description="Also the X-Request-ID header; in the server's log.")
    code: str | None = Field(default=None, description="A short machine name, when there is one.")
    errors: list[Any] | None = Field(
        default=None, description="Item by item: the fields that failed, or the skipped events."
    )


def request_id(request: Request) -> str:
    """The id :class:`ProblemMiddleware` gave this request."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else uuid.uuid4().hex


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: Iterable[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The problem document answering ``request`` with ``status``."""
    body: dict[str, Any] = {
        "type": f"{_TYPE_PREFIX}{code}" if code else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id(request),
    }
    if code:
        body["code"] = code
    if errors is not None:
        body["errors"] = list(errors)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _loc(parts: Iterable[Any]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in parts]


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [
        {"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    first = items[0] if items else None
    where = ".".join(str(p) for p in first["loc"]) if first else "request"
    detail = f"{where}: {first['msg']}" if first else "the request is not valid"
    return problem(request, 422, detail, code="validation", errors=items)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem(request, exc.status_code, detail, headers=exc.headers)


#: The handlers create_app installs: every framework error is a problem document too.
HANDLERS = {RequestValidationError: _validation, HTTPException: _http}


class ApiMetrics:
    """This process's counters, in a registry of its own (one per app: tests build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.unhandled = Counter(
            "touchflow_api_unhandled_errors",
            "Requests that ended in an exception no route handled (answered 500).",
            ["method", "route"],
            registry=self.registry,
        )


class ProblemMiddleware:
    """Gives each request an id (``X-Request-ID``) and turns an unhandled error into a 500.

    Pure ASGI (not ``BaseHTTPMiddleware``), so background tasks and streamed
    bodies pass through untouched. An error after the answer has started
    cannot be answered any more: it is logged and counted all the same.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.unhandled.labels(scope.get("method", ""), route).inc()
            _log.exception(
                "unhandled error, request %s: %s %s", rid, scope.get("method"), scope.get("path")
            )
            if started:
                return
            body = {
                "type": "about:blank",
                "title": HTTPStatus.INTERNAL_SERVER_ERROR.phrase,
                "status": 500,
                "detail": "an unexpected error; it is logged under this request_id",
                "instance": scope.get("path", ""),
                "request_id": rid,
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", MEDIA_TYPE.encode()),
                        (b"x-request-id", rid.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})
