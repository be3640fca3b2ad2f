"""What every CRM stand-in offers tests, and a small base to build one on.

:class:`CrmStandin` is the protocol the CRM contract suite
(``tests/adapters/crm/test_crm_contract.py``) drives: the HubSpot, Pipedrive and Salesforce
stand-ins implement it, so one suite exercises every connector against real
HTTP on 127.0.0.1.

:class:`HttpStandin` is an optional base: a stdlib ``ThreadingHTTPServer`` in a
background thread that parses requests, checks auth, plays scripted failures
(:meth:`HttpStandin.fail_next`), enforces a fixed-window rate limit and hands
the rest to :meth:`HttpStandin.route`, under one lock. A subclass supplies the
vendor's auth rule, error body and rate-limit headers.

Scripted failures are played *before* the request is handled, so a failed
request changed nothing: a ``"timeout"`` holds the request past the client's
timeout and then drops the connection without handling it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, Protocol, runtime_checkable

from tests.support.standins.server import BackgroundServer, StandinHTTPServer
from touchflow.domain.crm import ChangeKind

__all__ = [
    "CrmStandin",
    "HttpStandin",
    "RecordKind",
    "Request",
    "StandinError",
]

RecordKind = Literal["person", "company", "deal", "activity", "association"]


@runtime_checkable
class CrmStandin(Protocol):
    """Test controls every CRM stand-in offers."""

    base_url: str  # what the connector takes as base_url / instance_url
    credentials: str  # the token the connector must present

    def fail_next(
        self,
        status: int | Literal["timeout"],
        *,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` authorized requests with ``status`` (the
        vendor's error body and, for 429, its limit headers) or hold them past
        the client's timeout (``"timeout"``); the failed request changes nothing."""
        ...

    def count(self, kind: RecordKind) -> int:
        """How many records of ``kind`` exist (associations: person-company links)."""
        ...

    def seed_owner(self, email: str, name: str) -> str:
        """Create an owner/user; its id."""
        ...

    def add_change(
        self,
        kind: ChangeKind,
        person_email: str,
        *,
        at: datetime,
        owner_id: str | None = None,
    ) -> str:
        """Make a change happen in the CRM at ``at`` (creating the person if needed);
        the id the connector reports as ``CrmChange.external_id``."""
        ...

    def record(self, kind: RecordKind, id: str) -> dict[str, Any]:
        """A record as the vendor stores it (its properties/fields), for assertions."""
        ...

    def drop_field(self, object: str, name: str) -> None:
        """Remove a custom field or property (the vendor's object and field names, as
        ``check_fields`` reports them): a CRM where it was never created."""
        ...

    def close(self) -> None:
        """Stop serving."""
        ...


class StandinError(Exception):
    """Raised by a route: answered with the vendor's error body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        self.status = status
        self.message = message
        self.code = code
        super().__init__(message)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def int_arg(self, name: str, default: int) -> int:
        value = self.arg(name)
        try:
            return int(value) if value is not None else default
        except ValueError as exc:
            raise StandinError(400, f"{name} must be an integer", "INVALID_PARAMETER") from exc


@dataclass
class _Scripted:
    status: int | Literal["timeout"]
    retry_after: float | None = None


@dataclass
class _Window:
    started: float = 0.0
    used: int = 0
    log: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandinHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        self.server.standin._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class HttpStandin(BackgroundServer):
    """Base for a vendor stand-in: serving, auth, scripted failures, rate limit.

    Subclasses implement :meth:`authorized`, :meth:`error_body`,
    :meth:`limit_headers` and :meth:`route`. ``rate_limit`` requests per
    ``window_s`` seconds (fixed window) are allowed; past that the answer is 429.
    """

    vendor = "crm"

    def __init__(
        self,
        *,
        credentials: str,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int = 10_000,
        window_s: float = 10.0,
        timeout_hold_s: float = 1.5,
    ) -> None:
        self.credentials = credentials
        self.rate_limit = rate_limit
        self.window_s = window_s
        self.timeout_hold_s = timeout_hold_s
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) in order
        self._scripted: deque[_Scripted] = deque()
        self._window = _Window()
        self._init_server(host, port)

    def _make_server(self, address: tuple[str, int]) -> StandinHTTPServer:
        return StandinHTTPServer(address, _Handler, self)

    @property
    def _thread_name(self) -> str:  # type: ignore[override]
        return f"{self.vendor}-standin"

    def close(self) -> None:
        """Stop serving (the protocol's name for :meth:`stop`)."""
        self.stop()

    @property
    def base_url(self) -> str:
        return self.url

    # -- controls --------------------------------------------------------------

    def fail_next(
        self,
        status: int | Literal["timeout"],
        *,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        if not (status == "timeout" or (isinstance(status, int) and 400 <= status < 600)):
            raise ValueError(f"fail_next takes a 4xx/5xx status or 'timeout', not {status!r}")
        with self.lock:
            self._scripted.extend(_Scripted(status, retry_after) for _ in range(times))

    def statuses(self) -> list[int]:
        """Statuses answered so far, in order (0: dropped)."""
        with self.lock:
            return [s for _, _, s in self.requests]

    # -- for subclasses ----------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def limit_headers(self, remaining: int, reset_s: float) -> dict[str, str]:
        raise NotImplementedError

    def route(self, request: Request) -> tuple[int, Any]:
        """Handle an authorized request (called under :attr:`lock`); (status, JSON body)."""
        raise NotImplementedError

    def default_message(self, status: int) -> tuple[str, str]:
        return {
            401: ("Authentication credentials not found", "UNAUTHORIZED"),
            403: ("Forbidden", "FORBIDDEN"),
            404: ("Not found", "NOT_FOUND"),
            429: ("Request limit exceeded", "RATE_LIMIT"),
        }.get(status, ("Internal server error" if status >= 500 else "Bad request", "ERROR"))

    # -- serving -----------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(handler.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._answer_error(handler, 400, "Invalid JSON body", "INVALID_JSON", {})
            return
        request = Request(
            method=handler.command,
            path=split.path,
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        if not self.authorized(request):
            message, code = self.default_message(401)
            self._answer_error(handler, 401, message, code, {}, request)
            return
        with self.lock:
            scripted = self._scripted.popleft() if self._scripted else None
            remaining, reset_s = self._take_quota()
        if scripted is not None and scripted.status == "timeout":
            self._closing.wait(self.timeout_hold_s)
            with self.lock:
                self.requests.append((request.method, request.path, 0))
            handler.drop()
            return
        if scripted is not None:
            status = int(scripted.status)
            headers: dict[str, str] = {}
            if status == 429:
                headers.update(self.limit_headers(0, reset_s))
            if scripted.retry_after is not None:
                headers["Retry-After"] = f"{scripted.retry_after:g}"
            message, code = self.default_message(status)
            self._answer_error(handler, status, message, code, headers, request)
            return
        limits = self.limit_headers(max(remaining, 0), reset_s)
        if remaining < 0:
            message, code = self.default_message(429)
            self._answer_error(handler, 429, message, code, limits, request)
            return
        try:
            with self.lock:
                status, payload = self.route(request)
        except StandinError as exc:
            self._answer_error(handler, exc.status, exc.message, exc.code, limits, request)
            return
        with self.lock:
            self.requests.append((request.method, request.path, status))
        handler.send_json(status, payload, limits)

    def _take_quota(self) -> tuple[int, float]:
        """Count one request in the current window: (remaining after it, seconds to reset)."""
        now = time.monotonic()
        if now - self._window.started >= self.window_s:
            self._window = _Window(started=now)
        self._window.used += 1
        reset_s = max(0.0, self.window_s - (now - self._window.started))
        return self.rate_limit - self._window.used, reset_s

    def _answer_error(
        self,
        handler: _Handler,
        status: int,
        message: str,
        code: str | None,
        headers: dict[str, str],
        request: Request | None = None,
    ) -> None:
        if request is not None:
            with self.lock:
                self.requests.append((request.method, request.path, status))
        handler.send_json(status, self.error_body(status, message, code), headers)
