"""A local stand-in for Twilio's REST API 2010-04-01: send a Message, create a Call.

Serves, over real HTTP on 127.0.0.1:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (operation ``CreateMessage``)
* ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` (operation ``CreateCall``)

as documented at https://www.twilio.com/docs/messaging/api/message-resource and
https://www.twilio.com/docs/voice/api/call-resource, so the official ``twilio``
library runs against it unchanged (point its HTTP client at :attr:`base_url`).

What it checks, in order, answering with Twilio's JSON error shape
``{"code", "message", "more_info", "status"}`` (plus ``details.violations``):

1. HTTP Basic auth with the account SID and auth token: 401, code 20003.
2. The path's account SID is the authenticated one: 404, code 20404.
3. The form body against the operation's request schema in Twilio's published
   OpenAPI spec (:class:`~tests.support.standins.openapi.RequestSchema`), plus
   the rules the spec cannot express: ``To``/``From`` present (21604 / 21603),
   a Body, MediaUrl or ContentSid for a message (21602), a Url, Twiml or
   ApplicationSid for a call (21205), numbers in E.164 (21211 / 21212),
   absolute http(s) URLs (21609 / 21205), a body of at most 1600 characters
   (21617). It is stricter than Twilio in one way on purpose: an unknown
   parameter is a 400 (Twilio ignores it), which catches a misspelt field.
   Every violation is listed in the message.
4. Scripted failures (:meth:`TwilioStandin.fail_next`), then per-number
   rejections (:meth:`TwilioStandin.reject_number`). Twilio's magic test
   numbers behave as with test credentials: ``+15005550001`` invalid (21211),
   ``+15005550002`` unroutable (21612), ``+15005550003`` no permission for
   the region (21408), ``+15005550004`` opted out (21610), ``+15005550009``
   not SMS-capable (21614).

A request that passes answers 201 with a Message or Call resource (status
``queued``) and is recorded in :attr:`TwilioStandin.messages` /
:attr:`TwilioStandin.calls`. Every request, accepted or not, is in
:attr:`TwilioStandin.requests`.

Run one by hand with ``python -m tests.support.standins.twilio_api --port 8031``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import math
import re
import secrets
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

from tests.support.standins.openapi import RequestSchema

__all__ = ["RecordedRequest", "TwilioStandin", "main"]

SPEC = "twilio/twilio_api_v2010.json"
API_VERSION = "2010-04-01"

_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/(?P<kind>Messages|Calls)\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_CALL_ENDPOINT = re.compile(r"^(client|sip):\S+$")

# Twilio's message for the error codes a test is likely to script.
_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20004: "Method not allowed",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    21211: "Invalid 'To' Phone Number: {to}",
    21214: "'To' phone number cannot be reached",
    21408: "Permission to send an SMS has not been enabled for the region indicated by "
    "the 'To' number: {to}",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
    "number: {from_} via SMS.",
    21614: "'To' number {to} is not a valid mobile number",
}

# Twilio's magic "To" numbers for test credentials.
MAGIC_NUMBERS: dict[str, int] = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}

Scripted = int | Literal["timeout", "disconnect"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received, whatever it answered."""

    method: str
    path: str
    form: dict[str, list[str]]
    status: int
    headers: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        """The last value of form field ``name`` (``None`` when absent)."""
        values = self.form.get(name)
        return values[-1] if values else None


@dataclass
class _Failure:
    what: Scripted
    to: str | None
    retry_after: float | None
    delay_s: float | None


class _Reply(Exception):
    """Internal: answer the request with this status and JSON body."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, code: int, message: str, violations: Sequence[str] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    if violations:
        body["details"] = {"violations": list(violations)}
    return body


def _absolute_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _segments(body: str) -> int:
    """SMS segments: GSM-7 (approximated as ASCII) 160/153 chars, UCS-2 70/67."""
    single, multi = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / multi)


class TwilioStandin:
    """Twilio's Messages and Calls endpoints on 127.0.0.1, scriptable, validating every body.

    ``timeout_delay_s`` is how long a scripted ``"timeout"`` holds its answer:
    set it above the client's timeout. Closing the stand-in releases held answers.
    """

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_delay_s: float = 2.0,
        magic_numbers: bool = True,
    ) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.timeout_delay_s = timeout_delay_s
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._messages: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._magic_numbers = magic_numbers
        self._rejects = self._initial_rejects()
        self._schemas = {
            "Messages": RequestSchema(SPEC, "CreateMessage"),
            "Calls": RequestSchema(SPEC, "CreateCall"),
        }
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a background thread."""
        if self._server is not None:
            return
        self._closing.clear()
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True  # a held keep-alive connection must not block close()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.01,), name="twilio-standin", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving, release held answers and drop open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def host(self) -> str:
        """The address it listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port it listens on (the bound one when started with port 0)."""
        if self._server is None:
            raise RuntimeError("the Twilio stand-in is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: replaces ``https://api.twilio.com``."""
        return f"http://{self._host}:{self.port}"

    # -- scripting -------------------------------------------------------------

    def reject_number(
        self, number: str, code: int = 21610, *, status: int = 400, message: str | None = None
    ) -> None:
        """Answer every request to ``number`` with this Twilio error until :meth:`clear`."""
        with self._lock:
            self._rejects[number] = (status, code, message)

    def fail_next(
        self,
        what: Scripted,
        *,
        to: str | None = None,
        retry_after: float | None = 1,
        delay_s: float | None = None,
    ) -> None:
        """Queue a failure for the next valid request (to ``to`` only, when given).

        ``what`` is an HTTP status (429 sends ``Retry-After: retry_after`` and
        code 20429; 5xx answers code 20500/20503), ``"timeout"`` (the message
        is accepted and recorded, the answer waits ``delay_s`` or
        :attr:`timeout_delay_s`) or ``"disconnect"`` (accepted and recorded,
        then the connection is closed without an answer).
        """
        with self._lock:
            self._failures.append(_Failure(what, to, retry_after, delay_s))

    def clear(self) -> None:
        """Forget recorded requests, scripted failures and rejections (magic numbers stay on)."""
        with self._lock:
            self._requests.clear()
            self._messages.clear()
            self._calls.clear()
            self._failures.clear()
            self._rejects = self._initial_rejects()

    def _initial_rejects(self) -> dict[str, tuple[int, int, str | None]]:
        if not self._magic_numbers:
            return {}
        return {number: (400, code, None) for number, code in MAGIC_NUMBERS.items()}

    # -- what it saw -----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted Message resources, in arrival order (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Accepted Call resources, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    # -- request handling (called from handler threads) ------------------------

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    def _handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str], _Failure | None]:
        """Decide the answer; records the request. Returns status, body, headers, failure."""
        form: dict[str, list[str]] = {}
        try:
            status, body, extra, failure = self._decide(method, path, headers, raw, form)
        except _Reply as reply:
            status, body, extra, failure = reply.status, reply.body, reply.headers, None
        record = RecordedRequest(method, path, form, status, headers)
        with self._lock:
            self._requests.append(record)
        return status, body, extra, failure

    @staticmethod
    def _decide_form(headers: dict[str, str], raw: bytes) -> dict[str, list[str]]:
        if not raw:
            return {}
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise _Reply(
                400,
                _error(
                    400,
                    20001,
                    f"Content-Type must be application/x-www-form-urlencoded, "
                    f"not {ctype or 'missing'}",
                ),
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Reply(400, _error(400, 20001, "The body is not UTF-8")) from None
        return parse_qs(text, keep_blank_values=True, strict_parsing=False)

    def _decide(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        form: dict[str, list[str]],
    ) -> tuple[int, dict[str, Any], dict[str, str], _Failure | None]:
        """Check auth, path, body and the script; fills ``form`` as soon as it is parsed."""
        if not self._authorized(headers.get("authorization")):
            raise _Reply(
                401,
                _error(401, 20003, _MESSAGES[20003]),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        match = _PATH.match(urlsplit(path).path)
        if match is None or match["sid"] != self.account_sid:
            raise _Reply(404, _error(404, 20404, _MESSAGES[20404].format(path=path)))
        if method != "POST":
            raise _Reply(405, _error(405, 20004, _MESSAGES[20004]))
        kind = match["kind"]
        form.update(self._decide_form(headers, raw))
        self._validate(kind, form)

        to = form["To"][-1]
        with self._lock:
            failure = next((f for f in self._failures if f.to in (None, to)), None)
            if failure is not None:
                self._failures.remove(failure)
            reject = self._rejects.get(to)
        if failure is not None and isinstance(failure.what, int):
            code = {429: 20429, 503: 20503}.get(failure.what, 20500)
            extra = {}
            if failure.what == 429 and failure.retry_after is not None:
                extra["Retry-After"] = f"{failure.retry_after:g}"
            message = _MESSAGES.get(code, "Scripted failure")
            raise _Reply(failure.what, _error(failure.what, code, message), extra)
        if reject is not None and failure is None:
            status, code, message = reject
            text = message or _MESSAGES.get(code, f"Error {code}")
            from_ = form.get("From", [""])[-1]
            raise _Reply(status, _error(status, code, text.format(to=to, from_=from_)))

        resource = self._message(form) if kind == "Messages" else self._call(form)
        with self._lock:
            (self._messages if kind == "Messages" else self._calls).append(resource)
        return 201, resource, {}, failure

    def _validate(self, kind: str, form: dict[str, list[str]]) -> None:
        schema = self._schemas[kind]
        violations = list(schema.form_errors(form))
        known = schema.schema.get("properties", {})
        violations += [f"{name}: unknown parameter" for name in sorted(form) if name not in known]
        code: int | None = None

        def rule(field_code: int, text: str) -> None:
            nonlocal code
            violations.append(text)
            code = code or field_code

        def last(name: str) -> str | None:
            values = form.get(name)
            return values[-1] if values else None

        to, from_ = last("To"), last("From")
        if not to:
            rule(21604 if kind == "Messages" else 21201, "To: a 'To' phone number is required")
        if kind == "Messages":
            if not from_ and not last("MessagingServiceSid"):
                rule(21603, "From: a 'From' phone number or MessagingServiceSid is required")
            if not (last("Body") or form.get("MediaUrl") or last("ContentSid")):
                rule(21602, "Body: message body is required (or MediaUrl or ContentSid)")
            if len(last("Body") or "") > 1600:
                rule(21617, "Body: the concatenated message body exceeds 1600 characters")
            if to and not _E164.match(to):
                rule(21211, f"To: {to!r} is not an E.164 phone number")
            if from_ and not _E164.match(from_):
                rule(21212, f"From: {from_!r} is not an E.164 phone number")
        else:
            if not from_:
                rule(21213, "From: a 'From' phone number is required")
            if not (last("Url") or last("Twiml") or last("ApplicationSid")):
                rule(21205, "Url: a Url, Twiml or ApplicationSid is required")
            if to and not (_E164.match(to) or _CALL_ENDPOINT.match(to)):
                rule(21211, f"To: {to!r} is not an E.164 number or client:/sip: address")
            if from_ and not (_E164.match(from_) or _CALL_ENDPOINT.match(from_)):
                rule(21212, f"From: {from_!r} is not an E.164 number or client: address")
            for name in ("Url", "FallbackUrl"):
                value = last(name)
                if value and not _absolute_http_url(value):
                    rule(21205, f"{name}: {value!r} is not an absolute http(s) URL")
        for name in ("StatusCallback",):
            value = last(name)
            if value and not _absolute_http_url(value):
                rule(21609, f"{name}: {value!r} is not an absolute http(s) URL")
        if violations:
            code = code or 20001
            headline = "Invalid request parameters"
            raise _Reply(
                400,
                _error(400, code, f"{headline}: {'; '.join(violations)}", violations),
            )

    def _resource_common(self, prefix: str, collection: str) -> dict[str, Any]:
        sid = prefix + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC))  # RFC 2822, as Twilio writes dates
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "price": None,
            "price_unit": "USD",
            "status": "queued",
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/{collection}/{sid}.json",
        }

    def _message(self, form: dict[str, list[str]]) -> dict[str, Any]:
        base = self._resource_common("SM", "Messages")
        body = form.get("Body", [""])[-1]
        media = form.get("MediaUrl", [])
        return {
            **base,
            "body": body,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "from": form.get("From", [None])[-1],
            "messaging_service_sid": form.get("MessagingServiceSid", [None])[-1],
            "num_media": str(len(media)),
            "num_segments": str(_segments(body)),
            "to": form["To"][-1],
            "subresource_uris": {"media": base["uri"].replace(".json", "/Media.json")},
        }

    def _call(self, form: dict[str, list[str]]) -> dict[str, Any]:
        base = self._resource_common("CA", "Calls")
        to, from_ = form["To"][-1], form["From"][-1]
        sub = base["uri"].removesuffix(".json")
        return {
            **base,
            "annotation": None,
            "answered_by": None,
            "caller_name": None,
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": from_,
            "from_formatted": from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "queue_time": "0",
            "start_time": None,
            "to": to,
            "to_formatted": to,
            "trunk_sid": None,
            "subresource_uris": {
                "notifications": f"{sub}/Notifications.json",
                "recordings": f"{sub}/Recordings.json",
                "events": f"{sub}/Events.json",
            },
        }


def _make_handler(standin: TwilioStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the twilio library's session expects
        server_version = "TwilioStandin/1.0"
        timeout = 60  # an idle keep-alive connection is dropped after a minute

        def setup(self) -> None:
            super().setup()
            with standin._lock:
                standin._connections.add(self.connection)

        def finish(self) -> None:
            with standin._lock:
                standin._connections.discard(self.connection)
            with contextlib.suppress(OSError):  # the client went away first (it timed out)
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read standin.requests instead

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra, failure = standin._handle(self.command, self.path, headers, raw)
            if failure is not None and failure.what == "disconnect":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if failure is not None and failure.what == "timeout":
                delay = failure.delay_s if failure.delay_s is not None else standin.timeout_delay_s
                standin._closing.wait(delay)
                self.close_connection = True
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True  # the client gave up waiting

        do_POST = _serve
        do_GET = _serve
        do_PUT = _serve
        do_DELETE = _serve

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until interrupted (Ctrl-C or SIGTERM); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.standins.twilio_api",
        description="Local stand-in for Twilio's Messages and Calls API (validates every body).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8031, help="port to bind, 0 for any free one")
    parser.add_argument("--account-sid", default=None, help="AC... (default: random)")
    parser.add_argument("--auth-token", default=None, help="auth token (default: random)")
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    standin = TwilioStandin(
        account_sid=args.account_sid, auth_token=args.auth_token, host=args.host, port=args.port
    )
    with standin:
        print(f"twilio stand-in listening on {standin.base_url}", flush=True)
        print(f"TOUCHFLOW_TWILIO__BASE_URL={standin.base_url}", flush=True)
        print(f"TOUCHFLOW_TWILIO__ACCOUNT_SID={standin.account_sid}", flush=True)
        print(f"TOUCHFLOW_TWILIO__AUTH_TOKEN={standin.auth_token}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
