"""A local stand-in of SendGrid's ``POST /v3/mail/send``, over real HTTP on 127.0.0.1.

Imitates: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send,
validated against SendGrid's published OpenAPI document
(the vendored ``specs/sendgrid/tsg_mail_v3.json``, operation ``SendMail``).

What it does, in order, for every request:

1. anything but ``POST /v3/mail/send``: ``404``/``405``;
2. ``Authorization`` other than ``Bearer <api_key>``: ``401``;
3. a body over 30 MB: ``413``; not JSON or not valid against the spec: ``400``
   listing every violation;
4. the next scripted outcome, if one is queued (see :meth:`SendgridStandin.fail_next`);
5. otherwise it records the message and answers ``202`` with an
   ``X-Message-Id`` header (``200`` when ``mail_settings.sandbox_mode`` is
   enabled, as SendGrid does; still recorded, with ``sandbox=True``).

Errors have SendGrid's shape: ``{"errors": [{"message", "field", "help"}]}``.
A scripted outcome is used by the next request that passes steps 1-3, so an
invalid request never eats one.

Server: the stdlib ``ThreadingHTTPServer`` (one thread per connection) with
HTTP/1.1 keep-alive; sendgrid-python closes its connection after every request
anyway. ``latency_s`` delays every answer, to imitate the network for benchmarks.

Run it by hand: ``python -m tests.support.standins.sendgrid_api --port 8090 --api-key test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from tests.support.standins.openapi import RequestSchema
from tests.support.standins.server import BackgroundServer, JsonHandler, StandinHTTPServer

__all__ = ["DEFAULT_API_KEY", "RecordedMessage", "SendgridStandin", "main"]

DEFAULT_API_KEY = "SG.standin-key"
MAIL_SEND_PATH = "/v3/mail/send"
MAX_BODY_BYTES = 30 * 1024 * 1024  # SendGrid's documented total message size limit

Fault = Literal["timeout", "drop"]


@dataclass(frozen=True)
class RecordedMessage:
    """A message the stand-in accepted: its ``X-Message-Id``, the JSON body and request headers."""

    x_message_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    sandbox: bool
    received_at: float

    @property
    def custom_args(self) -> dict[str, Any]:
        """The first personalization's custom_args merged over the message-level ones."""
        merged: dict[str, Any] = {}
        if isinstance(self.body.get("custom_args"), dict):
            merged.update(self.body["custom_args"])
        personalizations = self.body.get("personalizations") or [{}]
        merged.update(personalizations[0].get("custom_args") or {})
        return merged


@dataclass(frozen=True)
class _Scripted:
    """One queued outcome: an HTTP status, or a fault after the message was accepted."""

    status: int | None = None
    fault: Fault | None = None
    retry_after: float | None = None
    rate_limit_reset: int | None = None
    message: str | None = None
    delay_s: float = 2.0


def _sendgrid_error(message: str, field: str | None = None, help_: Any = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": help_}


_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "The from address does not match a verified Sender Identity.",
    404: "not found",
    405: "method not allowed",
    413: "content too large",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
}


_AUTH_HELP = "https://www.twilio.com/docs/sendgrid/for-developers/sending-email/authentication"


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for clients that ask for it
    server: StandinHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log line: thousands of them in a benchmark."""

    def do_GET(self) -> None:
        self._method_not_allowed()

    do_PUT = do_PATCH = do_DELETE = do_GET

    def do_POST(self) -> None:
        standin = self.server.standin
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(413, _DEFAULT_MESSAGES[413], close=True)
            return
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?", 1)[0] != MAIL_SEND_PATH:
            self._error(404, _DEFAULT_MESSAGES[404])
            return
        if self.headers.get("Authorization") != f"Bearer {standin.api_key}":
            self._error(401, _DEFAULT_MESSAGES[401], help_=_AUTH_HELP)
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "Bad Request: the request body is not valid JSON", field=None)
            return
        violations = (
            standin.schema.errors(body)
            if isinstance(body, dict)
            else ["<body>: must be a JSON object"]
        )
        if violations:
            self.server.standin._count_rejected()
            self._send_json(
                400,
                {"errors": [_sendgrid_error(v, field=v.split(":", 1)[0]) for v in violations]},
            )
            return

        scripted = standin._next_scripted()
        if scripted is not None and scripted.status is not None:
            self._scripted_status(scripted)
            return
        record = standin._record(body, dict(self.headers.items()))
        if scripted is not None and scripted.fault == "drop":
            # Accepted, then the connection dies before the status line goes out.
            self.close_connection = True
            self._drop()
            return
        if scripted is not None and scripted.fault == "timeout":
            # Accepted, but the answer comes after the client has given up.
            standin._closing.wait(scripted.delay_s)
            self.close_connection = True
        elif standin.latency_s:
            time.sleep(standin.latency_s)
        status = 200 if record.sandbox else 202
        try:
            self._send_empty(status, {"X-Message-Id": record.x_message_id})
        except OSError:  # the client left (timeout fault): nothing to tell it
            self.close_connection = True

    # -- responses ---------------------------------------------------------

    def _scripted_status(self, scripted: _Scripted) -> None:
        status = scripted.status or 500
        headers: dict[str, str] = {}
        if scripted.retry_after is not None:
            headers["Retry-After"] = f"{scripted.retry_after:g}"
        if status == 429:
            headers["X-RateLimit-Limit"] = "600"
            headers["X-RateLimit-Remaining"] = "0"
        if scripted.rate_limit_reset is not None:
            headers["X-RateLimit-Reset"] = str(scripted.rate_limit_reset)
        message = scripted.message or _DEFAULT_MESSAGES.get(status, "error")
        if self.server.standin.latency_s:
            time.sleep(self.server.standin.latency_s)
        self._send_json(status, {"errors": [_sendgrid_error(message)]}, headers)

    def _method_not_allowed(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        self._error(405 if self.path.startswith(MAIL_SEND_PATH) else 404, "method not allowed")

    def _error(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        help_: Any = None,
        close: bool = False,
    ) -> None:
        if close:
            self.close_connection = True
        self._send_json(status, {"errors": [_sendgrid_error(message, field, help_)]})

    def _send_empty(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _drop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class SendgridStandin(BackgroundServer):
    """SendGrid's Mail Send endpoint on ``http://127.0.0.1:<port>``, started by :meth:`start`.

    ``url`` is what ``SendGridAPIClient(host=...)`` takes. ``messages`` lists
    what was accepted, in arrival order. Thread-safe.
    """

    _thread_name = "sendgrid-standin"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.schema = RequestSchema("sendgrid/tsg_mail_v3.json", "SendMail")
        self._lock = threading.Lock()
        self._messages: list[RecordedMessage] = []
        self._scripted: deque[_Scripted] = deque()
        self._rejected = 0
        self._requests = 0
        self._connections = 0
        self._init_server(host, port)

    def _make_server(self, address: tuple[str, int]) -> StandinHTTPServer:
        return StandinHTTPServer(address, _Handler, self)

    # -- scripting ---------------------------------------------------------

    def fail_next(
        self,
        what: int | Fault,
        *,
        retry_after: float | None = None,
        rate_limit_reset: int | None = None,
        message: str | None = None,
        delay_s: float = 2.0,
        times: int = 1,
    ) -> None:
        """Queue the outcome of the next valid request(s), ``times`` times.

        ``what`` is an HTTP status (``429``, ``500``, ``400``, ...: the message
        is *not* recorded, the answer carries ``message`` in SendGrid's error
        shape and, if given, ``Retry-After``/``X-RateLimit-Reset``), or a fault
        after the message was accepted and recorded: ``"timeout"`` answers only
        after ``delay_s`` (longer than the client's timeout), ``"drop"`` closes
        the connection without an answer.
        """
        if isinstance(what, int):
            item = _Scripted(
                status=what,
                retry_after=retry_after,
                rate_limit_reset=rate_limit_reset,
                message=message,
            )
        elif what in ("timeout", "drop"):
            item = _Scripted(fault=what, delay_s=delay_s)
        else:
            raise ValueError(f"fail_next takes an HTTP status, 'timeout' or 'drop', not {what!r}")
        with self._lock:
            self._scripted.extend([item] * times)

    def clear(self) -> None:
        """Forget recorded messages, counters and queued outcomes."""
        with self._lock:
            self._messages.clear()
            self._scripted.clear()
            self._rejected = 0
            self._requests = 0
            self._connections = 0

    # -- what happened -------------------------------------------------------

    @property
    def messages(self) -> list[RecordedMessage]:
        """Accepted messages, in arrival order (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the accepted messages, in arrival order."""
        return [m.body for m in self.messages]

    @property
    def rejected(self) -> int:
        """How many requests failed spec validation."""
        with self._lock:
            return self._rejected

    @property
    def requests(self) -> int:
        """How many valid, authorized Mail Send requests arrived (accepted or scripted)."""
        with self._lock:
            return self._requests

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted (fewer than requests with keep-alive)."""
        with self._lock:
            return self._connections

    # -- used by the handler -------------------------------------------------

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def _next_scripted(self) -> _Scripted | None:
        with self._lock:
            self._requests += 1
            return self._scripted.popleft() if self._scripted else None

    def _count_rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> RecordedMessage:
        sandbox = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        record = RecordedMessage(
            # SendGrid's ids are 22 URL-safe characters.
            x_message_id=secrets.token_urlsafe(16)[:22],
            body=body,
            headers=headers,
            sandbox=sandbox,
            received_at=time.time(),
        )
        with self._lock:
            self._messages.append(record)
        return record


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in until interrupted: ``python -m tests.support.standins.sendgrid_api``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--api-key", default=DEFAULT_API_KEY)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay every answer")
    args = ap.parse_args(argv)
    standin = SendgridStandin(
        api_key=args.api_key, host=args.host, port=args.port, latency_s=args.latency_ms / 1000
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with standin:
        print(
            f"SendGrid stand-in on {standin.url}{MAIL_SEND_PATH} (key {args.api_key!r})", flush=True
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print(f"accepted {len(standin.messages)} messages", flush=True)


if __name__ == "__main__":
    main()
