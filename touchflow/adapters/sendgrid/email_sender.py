"""Send email through SendGrid's v3 Mail Send API; the body is built by the ``sendgrid`` library.

Talks to: ``POST /v3/mail/send``
(https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send). The
request body is built with sendgrid-python 6.x's ``sendgrid.helpers.mail``
classes (``Mail(...).get()``) and posted with httpx on one keep-alive client
(see "HTTP layer" below). One request per message, one recipient per message.

Limits: SendGrid publishes no fixed number for Mail Send; every response carries
``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (epoch seconds) and an exceeded
limit answers ``429``. A body may not exceed 30 MB, ``custom_args`` 10,000 bytes,
``categories`` 10 entries of at most 255 characters each.
(https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits)

Quirks:

* ``202 Accepted`` means queued, not delivered; the ``X-Message-Id`` response
  header is the provider id, and SendGrid's Event Webhook reports it (as the
  prefix of ``sg_message_id``) together with our ``custom_args``. With
  ``mail_settings.sandbox_mode`` SendGrid validates the body, answers ``200``
  and sends nothing; a success without ``X-Message-Id`` is still a success
  (``provider_id`` is then ``None``), because failing it would invite a resend.
* ``custom_args`` go on the personalization, not on the message: SendGrid's
  published OpenAPI document types the message-level ``custom_args`` as a
  string, while the personalization-level one is an object; per-personalization
  args are what the Event Webhook reports anyway.
* Message-ID: the API does not list ``Message-ID`` among the headers it refuses
  (x-sg-id, x-sg-eid, received, dkim-signature, Content-Type,
  Content-Transfer-Encoding, To, From, Subject, Reply-To, CC, BCC), so our
  Message-ID is sent as a header: later steps thread on it with In-Reply-To and
  References. SendGrid uses Message-ID/``smtp-id`` for its own bookkeeping
  and its events have been seen to report an ``smtp-id`` different from the one
  we set (django-anymail moved to a custom arg for this reason, on SendGrid
  support's advice), so our id is *also* sent as the custom arg ``message_id``
  and event matching must use ``touch_key``/``message_id``, never ``smtp-id``.
* An ASM group (``asm_group_id``) or subscription tracking makes SendGrid manage
  unsubscribes and it may add its own List-Unsubscribe; touchflow's RFC 8058
  one-click header is set from the message either way.
* HTTP layer: sendgrid-python's own client (``python_http_client``) builds a
  new ``urllib`` opener per request and urllib sends ``Connection: close``:
  every message would pay a TCP and TLS handshake. So only the body comes from
  the library; it is posted through one ``httpx.Client`` whose pool keeps up to
  ``concurrency`` connections alive, shared by a thread pool of ``concurrency``
  workers (both created once and reused across batches).
* The only ambiguous moment is after the request went out and before the
  status line came back: a read timeout, reset or a connection closed without
  a response there is :class:`~touchflow.errors.DeliveryUnknown` (SendGrid may
  have queued it), never retried blindly. Failing to connect (refused, DNS,
  connect or pool timeout) or to write the request is retryable: SendGrid
  never had a whole request. A kept-alive connection the server closed while
  idle is detected by httpx before reuse; the race where it closes just as
  the request goes out reads as ``DeliveryUnknown``, on the safe side.

Every httpx, ssl and socket exception, and every status, becomes a
:mod:`touchflow.errors` error in :func:`map_outcome` and nowhere else (status
rules and ``Retry-After`` through :mod:`touchflow.adapters._http`).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx
from sendgrid import __version__ as _SENDGRID_VERSION
from sendgrid.helpers.mail import (
    Asm,
    Category,
    CustomArg,
    From,
    GroupId,
    Header,
    Mail,
    MailSettings,
    PlainTextContent,
    SandBoxMode,
    Subject,
    To,
)

from touchflow.adapters._http import (
    HeaderLookup,
    ResetHeader,
    describe,
    error_for_status,
    parse_retry_after,
)
from touchflow.adapters.closing import ClosesOnExit
from touchflow.adapters.mail_headers import standard_headers
from touchflow.errors import (
    ConfigError,
    ConnectorError,
    DeliveryUnknown,
    FatalError,
    RetryableError,
)
from touchflow.ports import OutboundEmail, SendResult

__all__ = ["SendgridEmailSender", "build_mail", "map_outcome"]

_log = logging.getLogger(__name__)

CONNECTOR = "sendgrid"

Operation = Literal["build", "mail_send"]
"""``build``: the request body could not be made, nothing was sent. ``mail_send``: the HTTP call."""

# Headers SendGrid refuses to take from the body (Mail Send reference), plus the
# ones OutboundEmail fields own: msg.headers may set none of them.
_PROTECTED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
        "message-id",
        "x-touchflow-touch",
        "in-reply-to",
        "references",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ":"
_MAX_CATEGORIES = 10
_MAX_ERROR_TEXT = 500


def build_mail(
    msg: OutboundEmail, *, sandbox_mode: bool = False, asm_group_id: int | None = None
) -> Mail:
    """Build the Mail Send request for ``msg`` with the library's helper classes.

    Raises ``ValueError`` for a header that cannot be sent (CR/LF in a value, an
    invalid name, one SendGrid or touchflow owns) or more than 10 categories, and
    the library's ``ApiKeyIncludedException`` when the text contains an API key.
    """
    mail = Mail(
        from_email=From(msg.from_addr, msg.from_name),
        to_emails=To(msg.to_addr),
        subject=Subject(msg.subject),
        plain_text_content=PlainTextContent(msg.text),
    )
    # Personalization 0 (see the module docstring for why not message level).
    mail.add_custom_arg(CustomArg("touch_key", msg.touch_key, p=0))
    mail.add_custom_arg(CustomArg("message_id", msg.message_id, p=0))

    # SendGrid rejects duplicate categories (uniqueItems); a cadence id equal to a
    # step id is not worth a 400.
    categories = list(dict.fromkeys(msg.categories))
    if len(categories) > _MAX_CATEGORIES:
        raise ValueError(f"SendGrid takes at most {_MAX_CATEGORIES} categories, got {categories}")
    for category in categories:
        mail.add_category(Category(category))

    headers = standard_headers(msg)
    for name, value in msg.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _PROTECTED_HEADERS:
            raise ValueError(f"header {name!r} is set by touchflow or SendGrid, not by a message")
        headers[name] = value
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        mail.add_header(Header(name, value))

    if sandbox_mode:
        settings = MailSettings()
        settings.sandbox_mode = SandBoxMode(True)
        mail.mail_settings = settings
    if asm_group_id is not None:
        mail.asm = Asm(GroupId(asm_group_id))
    return mail


def _error_text(body: bytes | str | None) -> str:
    """SendGrid's ``errors[].message`` (with ``field`` when given), or the raw body, shortened."""
    if body is None:
        return ""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list):
        parts = []
        for err in parsed["errors"]:
            if not isinstance(err, dict):
                continue
            message = str(err.get("message") or "").strip()
            field = err.get("field")
            parts.append(f"{field}: {message}" if field and field != "null" else message)
        if parts:
            return "; ".join(parts)[:_MAX_ERROR_TEXT]
    return " ".join(raw.split())[:_MAX_ERROR_TEXT]


# Epoch seconds on the wire, so a 429 without Retry-After still says how long to wait.
_RATE_LIMIT_RESET = ResetHeader("X-RateLimit-Reset", epoch=True)


def _retry_after(headers: HeaderLookup | None, now: float) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or date), else ``X-RateLimit-Reset`` (epoch).

    A ``Retry-After`` date without a zone is not read (``X-RateLimit-Reset`` counts).
    """
    return parse_retry_after(headers, now, reset_headers=(_RATE_LIMIT_RESET,), naive_dates="ignore")


#: Failures before SendGrid could have a whole request: nothing was queued.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.UnsupportedProtocol,
)
#: Failures after the request went out and before a status line came back.
_NO_ANSWER = (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError)


def _cert_rejected(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def map_outcome(
    touch_key: str,
    outcome: httpx.Response | BaseException,
    *,
    operation: Operation = "mail_send",
    now: float | None = None,
) -> SendResult:
    """Turn a Mail Send response or exception into a :class:`SendResult`; the one place that does.

    * 2xx: success, ``provider_id`` from ``X-Message-Id``;
    * 429: :class:`RateLimited`, ``retry_after`` from ``Retry-After`` or
      ``X-RateLimit-Reset`` (``now`` is the epoch clock, for the latter);
    * 5xx: :class:`RetryableError`; any other status: :class:`FatalError` with
      SendGrid's error text;
    * nothing sent (refused, DNS, connect timeout, the request not written):
      :class:`RetryableError`; an untrusted TLS certificate: :class:`FatalError`;
    * the request went out and no status came back (read timeout, reset,
      closed connection): :class:`DeliveryUnknown`;
    * ``operation="build"``: the body could not be built, :class:`FatalError`.

    An error result has ``outcome`` as the error's ``__cause__`` (for a
    response, an ``httpx.HTTPStatusError`` carrying it).
    """
    kw: dict[str, Any] = {"connector": CONNECTOR, "operation": operation}
    error: ConnectorError
    if isinstance(outcome, httpx.Response):
        status = outcome.status_code
        if 200 <= status < 300:
            provider_id = outcome.headers.get("X-Message-Id")
            if provider_id is None:
                _log.info("sendgrid %s for touch %s without X-Message-Id", status, touch_key)
            return SendResult(touch_key, provider_id=provider_id)
        error = error_for_status(
            status,
            message=_error_text(outcome.content) or outcome.reason_phrase,
            retry_after=_retry_after(outcome.headers, time.time() if now is None else now),
            **kw,
        )
        # The cause a reader (and a log) follows: httpx's own error for the status.
        error.__cause__ = httpx.HTTPStatusError(
            f"{status} {outcome.reason_phrase}", request=outcome.request, response=outcome
        )
        return SendResult(touch_key, error=error)

    exc = outcome
    cert = _cert_rejected(exc)
    if operation == "build":
        error = FatalError(f"cannot build the request ({type(exc).__name__}: {exc})", **kw)
    elif cert is not None:
        error = FatalError(f"server TLS certificate rejected ({describe(cert)})", **kw)
    elif isinstance(exc, _NOT_SENT):
        # SendGrid has not got a complete request: the same call may work later.
        error = RetryableError(f"request not sent ({describe(exc)})", **kw)
    elif isinstance(exc, (*_NO_ANSWER, OSError)):
        # The request was sent, SendGrid may have queued it.
        error = DeliveryUnknown(f"no response after the request was sent ({describe(exc)})", **kw)
    else:
        error = FatalError(f"cannot send ({describe(exc)})", **kw)
    error.__cause__ = exc
    return SendResult(touch_key, error=error)


class SendgridEmailSender(ClosesOnExit):
    """:class:`~touchflow.ports.EmailSender` over SendGrid's v3 Mail Send API.

    Messages of a batch are sent concurrently by a pool of ``concurrency``
    threads over one keep-alive ``httpx.Client`` of as many connections, both
    created on first use and reused across batches. ``timeout_s`` bounds
    connecting and each read of the response. ``clock`` returns epoch seconds
    (used to turn ``X-RateLimit-Reset`` into a delay); tests may inject one;
    ``transport`` is httpx's transport seam.
    """

    def __init__(
        self,
        api_key: str,
        *,
        host: str = "https://api.sendgrid.com",
        sandbox_mode: bool = False,
        timeout_s: float = 10.0,
        concurrency: int = 16,
        asm_group_id: int | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError(
                "SendGrid: an API key is required (TOUCHFLOW_SENDGRID__API_KEY or .env)"
            )
        if concurrency < 1:
            raise ConfigError(f"SendGrid: concurrency must be at least 1, got {concurrency}")
        if not host.startswith(("https://", "http://")):
            raise ConfigError(
                f"SendGrid: host must be an http(s) URL such as https://api.sendgrid.com, "
                f"got {host!r} (TOUCHFLOW_SENDGRID__HOST)"
            )
        if timeout_s <= 0:
            raise ConfigError(f"SendGrid: timeout_s must be positive, got {timeout_s}")
        self._api_key = api_key
        self._host = host.rstrip("/")
        self._sandbox_mode = sandbox_mode
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._asm_group_id = asm_group_id
        self._clock = clock
        self._transport = transport
        self._http: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        mode = ", sandbox" if self._sandbox_mode else ""
        return f"SendgridEmailSender({self._host}, concurrency={self._concurrency}{mode})"

    @property
    def concurrency(self) -> int:
        """How many requests are in flight at most."""
        return self._concurrency

    def build_mail(self, msg: OutboundEmail) -> Mail:
        """The request this sender would make for ``msg`` (see :func:`build_mail`)."""
        return build_mail(msg, sandbox_mode=self._sandbox_mode, asm_group_id=self._asm_group_id)

    def send_batch(self, messages: Sequence[OutboundEmail]) -> list[SendResult]:
        """Send every message; return one result per message, in order. Never raises for a message.

        Each message is one request, at most ``concurrency`` in flight. Nothing
        is retried here: a :class:`RetryableError` goes back to the caller,
        which owns backoff, and a :class:`DeliveryUnknown` must not be resent.
        """
        if not messages:
            return []
        if len(messages) == 1:
            # No thread hop for a single message.
            return [self._send_one(messages[0])]
        pool = self._executor()
        return list(pool.map(self._send_one, messages))

    def close(self) -> None:
        """Stop the worker threads and close the kept-alive connections; stays usable."""
        with self._lock:
            pool, self._pool = self._pool, None
            http, self._http = self._http, None
        if pool is not None:
            pool.shutdown(wait=True)
        if http is not None:
            http.close()

    # -- internals ---------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._concurrency, thread_name_prefix="sendgrid-send"
                )
            return self._pool

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    base_url=self._host,
                    headers={
                        "Authorization": f"Bearer {self._api_key}",
                        "Accept": "application/json",
                        "User-Agent": f"sendgrid/{_SENDGRID_VERSION};python (touchflow)",
                    },
                    timeout=httpx.Timeout(self._timeout_s),
                    limits=httpx.Limits(
                        max_connections=self._concurrency,
                        max_keepalive_connections=self._concurrency,
                    ),
                    transport=self._transport,
                )
            return self._http

    def _send_one(self, msg: OutboundEmail) -> SendResult:
        try:
            mail = self.build_mail(msg)
        except Exception as exc:  # ValueError, ApiKeyIncludedException, bad types
            result = map_outcome(msg.touch_key, exc, operation="build")
        else:
            try:
                response = self._client().post("/v3/mail/send", json=mail.get())
            except Exception as exc:  # mapped in map_outcome, the one place
                result = map_outcome(msg.touch_key, exc, now=self._clock())
            else:
                result = map_outcome(msg.touch_key, response, now=self._clock())
        if result.error is not None:
            _log.info("sendgrid send of touch %s failed: %s", msg.touch_key, result.error)
        return result
