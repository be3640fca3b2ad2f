"""Send SMS and place click-to-call calls through Twilio, on the official ``twilio`` library.

Talks to: Twilio Programmable Messaging and Voice, REST API 2010-04-01
(https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource,
https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource),
through ``twilio.rest.Client`` with an HTTP client of ours
(:class:`TwilioRoutingHttpClient`) that can send ``https://api.twilio.com``
to another base URL: the local stand-in in tests
(:mod:`tests.support.standins.twilio_api`).

Limits: Twilio queues messages per sender: about one message segment a second
for a US long code (10DLC campaigns raise it, toll-free and short codes allow
more) and answers 429 / code 20429 when the account sends more concurrent API
requests than it allows (Retry-After says when to come back). This connector
sends a batch over ``concurrency`` threads on one keep-alive session; it does
not throttle per sender, which is the cadence engine's and routing's job.
Bodies up to 1600 characters (Twilio splits them into segments).

Quirks:

* Every number is normalized to E.164 with :mod:`touchflow.domain.phones` first. An
  invalid recipient is :class:`~touchflow.errors.RecipientRejected`
  (``kind="invalid"``) without a call to Twilio; an invalid sender number is
  a :class:`~touchflow.errors.FatalError` (it is our configuration).
* The touch key rides on the status callback URL (``?touch_key=...``), so the
  delivery and STOP webhooks can be matched to the touch. The provider id is
  the Message SID (``SM...``).
* Twilio's answer carries an error ``code`` beside the HTTP status; the code
  decides first: 21610 is a recipient who texted STOP (an opt-out), 21211,
  21614, 21408, 21612 and their kin mean the number cannot take this message.
* POSTs are never retried by the HTTP layer (``max_retries=0``): a read
  timeout or a connection lost after the request went out is
  :class:`~touchflow.errors.DeliveryUnknown`, since Twilio may have queued it.
  Only a failure to connect is retryable.
* ``twilio.rest.Client`` gets an explicit (empty) environment, so it does not
  read ``TWILIO_REGION`` / ``TWILIO_EDGE`` from ``os.environ`` behind the
  settings' back.

Click-to-call: :meth:`TwilioSmsSender.place_call` rings the SDR's phone
(``To`` = the agent); when the SDR answers, Twilio fetches TwiML from
``twiml_url``, whose answer (:func:`bridge_twiml`) dials the prospect with the
team's number as caller ID.

Every twilio, requests and urllib3 exception becomes a :mod:`touchflow.errors`
error in :func:`map_twilio_error` and nowhere else.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from touchflow.adapters._http import error_for_status, parse_retry_after
from touchflow.adapters.closing import ClosesOnExit
from touchflow.adapters.twilio.transcription import start_transcription
from touchflow.domain.phones import to_e164
from touchflow.errors import (
    ConfigError,
    ConnectorError,
    DeliveryUnknown,
    FatalError,
    RecipientRejected,
    RetryableError,
)
from touchflow.ports import OutboundSms, SendResult, TranscriptionStart

__all__ = [
    "CALL_STATUS_EVENTS",
    "CONNECTOR",
    "TOUCH_KEY_PARAM",
    "InvalidNumber",
    "TwilioRoutingHttpClient",
    "TwilioSmsSender",
    "bridge_twiml",
    "map_twilio_error",
]

_log = logging.getLogger(__name__)

CONNECTOR = "twilio"

TOUCH_KEY_PARAM = "touch_key"
"""Query parameter added to the SMS status callback URL: the ledger's touch key."""

CALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
"""Call progress events requested when a call status callback is given."""

# The recipient replied STOP (or was opted out on Twilio's side).
_OPT_OUT_CODES = frozenset({21610})
# The number cannot take this message or call: invalid, unreachable, landline,
# a region the account may not reach, blocked. Recipient problems, not ours.
_INVALID_RECIPIENT_CODES = frozenset(
    {
        13223,  # Dial: invalid phone number format
        13224,  # Dial: invalid phone number
        21211,  # invalid 'To' phone number
        21214,  # 'To' phone number cannot be reached
        21215,  # geo permissions: account not authorized to call this number
        21216,  # account not allowed to call this (premium) number
        21217,  # phone number does not appear to be valid
        21401,  # invalid phone number
        21407,  # this phone number type does not support SMS or MMS
        21408,  # permission to send an SMS not enabled for the region of 'To'
        21421,  # phone number is invalid
        21612,  # 'To' not currently reachable via SMS from this 'From'
        21614,  # 'To' number is not a valid mobile number
        21635,  # 'To' number cannot be a landline
    }
)
_RATE_LIMIT_CODES = frozenset({20429})

# https://api.twilio.com, and regional hosts such as https://api.dublin.ie1.twilio.com
_API_ORIGIN = re.compile(r"^https://api(?:\.[a-z0-9-]+)*\.twilio\.com(?=/|$)")

# A non-empty mapping without TWILIO_* keys: the client reads nothing from os.environ.
_NO_ENVIRONMENT: Mapping[str, str] = {"TOUCHFLOW": "settings come from touchflow.settings"}

Operation = Literal["send_sms", "place_call"]


class InvalidNumber(ValueError):
    """A phone number that :func:`touchflow.domain.phones.to_e164` refused; ``role`` says whose."""

    def __init__(self, role: Literal["to", "from", "agent"], reason: ValueError) -> None:
        super().__init__(f"{role} number: {reason}")
        self.role = role


class TwilioRoutingHttpClient(TwilioHttpClient):
    """The twilio library's requests-based client, sending ``api.twilio.com`` calls to ``base_url``.

    One :class:`requests.Session` with a connection pool of ``pool_size`` for
    both schemes, no HTTP-level retries (a POST must never go out twice), and
    the last response of each thread kept for :func:`map_twilio_error`, since
    ``TwilioRestException`` does not carry the response headers (Retry-After).
    """

    def __init__(self, base_url: str | None, *, timeout: float, pool_size: int) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        assert self.session is not None  # pool_connections=True always makes one
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._local = threading.local()

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request, to ``base_url`` instead of Twilio's host when one is set."""
        if self.base_url:
            url = _API_ORIGIN.sub(self.base_url, url, count=1)
        self._local.response = None
        response = super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._local.response = response
        return response

    def last_response(self) -> Response | None:
        """The response the current thread's last request got, ``None`` if it got none."""
        return getattr(self._local, "response", None)

    def forget_response(self) -> None:
        """Clear the current thread's last response before a new operation."""
        self._local.response = None

    def close(self) -> None:
        """Close the session's pooled connections (the session can still be used afterwards)."""
        if self.session is not None:
            self.session.close()


def map_twilio_error(
    exc: BaseException, operation: Operation, *, response: Response | None = None
) -> ConnectorError:
    """Turn a twilio, requests, urllib3 or number error into a touchflow error; the one place.

    ``response`` is the HTTP response the failed operation got, if any: it
    supplies Retry-After, and a 2xx there means Twilio accepted the request
    even though reading its answer failed. The returned error has ``exc`` as
    its ``__cause__``, as if raised ``from`` it.
    """
    kw: dict[str, Any] = {"connector": CONNECTOR, "operation": operation}
    error: ConnectorError
    if isinstance(exc, InvalidNumber):
        if exc.role == "from":
            error = FatalError(f"sender number is not valid ({exc})", **kw)
        else:
            error = RecipientRejected(f"not a valid phone number ({exc})", kind="invalid", **kw)
    elif isinstance(exc, TwilioRestException | TwilioServiceException):
        error = _api_error(exc, response, kw)
    elif isinstance(exc, requests.exceptions.SSLError):
        # The TLS handshake comes before the request: nothing was sent.
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            error = FatalError(f"Twilio's TLS certificate was rejected ({exc})", **kw)
        else:
            error = RetryableError(f"TLS handshake failed ({exc})", **kw)
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        error = RetryableError(f"connect timed out ({exc})", **kw)
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        error = DeliveryUnknown(
            f"no answer within the timeout after the request was sent ({exc})", **kw
        )
    elif isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidHeader,
    ):
        error = FatalError(f"cannot build the request ({exc})", **kw)
    elif isinstance(exc, requests.exceptions.ConnectionError) and _never_connected(exc):
        error = RetryableError(f"cannot connect ({exc})", **kw)
    elif isinstance(exc, requests.exceptions.RequestException):
        # Reset or closed after the request went out, a broken response body.
        error = DeliveryUnknown(f"connection lost after the request was sent ({exc})", **kw)
    elif response is not None and 200 <= response.status_code < 300:
        error = DeliveryUnknown(
            f"Twilio accepted the request but its answer could not be read "
            f"({type(exc).__name__}: {exc})",
            status=response.status_code,
            **kw,
        )
    else:
        error = FatalError(f"cannot send ({type(exc).__name__}: {exc})", **kw)
    error.__cause__ = exc
    return error


def _api_error(
    exc: TwilioRestException | TwilioServiceException,
    response: Response | None,
    kw: dict[str, Any],
) -> ConnectorError:
    status = int(exc.status)
    code = int(exc.code) if exc.code is not None else None
    if isinstance(exc, TwilioServiceException):
        text = f"{exc.title}: {exc.detail}" if exc.detail else exc.title
    else:
        # The library prefixes Twilio's message with what it was doing.
        text = re.sub(r"^Unable to \w+ record: ", "", str(exc.msg))
    kw = {**kw, "status": status, "vendor_code": str(code) if code and code != status else None}
    # The code decides first: these are the recipient's, whatever the status.
    if code in _OPT_OUT_CODES:
        return RecipientRejected(
            f"recipient opted out (replied STOP): {text}", kind="opt_out", **kw
        )
    if code in _INVALID_RECIPIENT_CODES:
        return RecipientRejected(f"recipient number rejected: {text}", kind="invalid", **kw)
    return error_for_status(
        message=text,
        retry_after=parse_retry_after(response.headers if response is not None else None),
        rate_limited=code in _RATE_LIMIT_CODES,
        auth_hint="check account SID and auth token",
        retry_above_599=True,
        **kw,
    )


def _never_connected(exc: BaseException) -> bool:
    """Whether a requests ConnectionError happened while connecting (nothing was sent)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError):
            return True
        nested = [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args]
        todo += [n for n in nested if isinstance(n, BaseException)]
    return False


def _normalize(raw: str, role: Literal["to", "from", "agent"], region: str | None) -> str:
    try:
        return to_e164(raw, region)
    except ValueError as exc:
        raise InvalidNumber(role, exc) from exc


def _with_touch_key(url: str, touch_key: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (TOUCH_KEY_PARAM, touch_key)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def bridge_twiml(
    prospect_number: str,
    caller_id: str,
    record: bool = False,
    transcription: TranscriptionStart | None = None,
) -> str:
    """TwiML that dials the prospect once the SDR answered: ``<Response><Dial callerId=...>``.

    Both numbers are normalized to E.164 (``ValueError`` when one is not a
    valid number). ``record`` records both legs from the moment the prospect
    answers, one channel each; recording consent is the caller's business.
    ``transcription`` (decided by the caller from the consent config) puts the
    announcement and ``<Start><Transcription>`` or ``<Start><Stream>`` first.
    """
    dial = Dial(
        caller_id=to_e164(caller_id),
        record="record-from-answer-dual" if record else None,
    )
    dial.number(to_e164(prospect_number))
    response = VoiceResponse()
    if transcription is not None:
        start_transcription(response, transcription)
    response.append(dial)
    return str(response)


class TwilioSmsSender(ClosesOnExit):
    """:class:`~touchflow.ports.SmsSender` on Twilio, plus click-to-call (:meth:`place_call`).

    A batch is sent over a reused pool of ``concurrency`` threads sharing one
    HTTP session. ``status_callback_url`` receives Twilio's delivery events,
    with the touch key added as ``?touch_key=``. ``default_region`` (ISO
    country) reads numbers written without a country code; ``None`` requires
    E.164-style input with a ``+``.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        status_callback_url: str | None = None,
        timeout_s: float = 10.0,
        concurrency: int = 8,
        default_region: str | None = None,
    ) -> None:
        missing = [
            f"{name} (TOUCHFLOW_TWILIO__{name.upper()})"
            for name, value in (("account_sid", account_sid), ("auth_token", auth_token))
            if not value
        ]
        if missing:
            raise ConfigError(f"Twilio: missing {' and '.join(missing)}")
        if timeout_s <= 0:
            raise ConfigError(f"Twilio: timeout_s must be positive, not {timeout_s}")
        if concurrency < 1:
            raise ConfigError(f"Twilio: concurrency must be at least 1, not {concurrency}")
        self._account_sid = account_sid
        self._base_url = base_url
        self._status_callback_url = status_callback_url
        self._concurrency = concurrency
        self._default_region = default_region
        self._http = TwilioRoutingHttpClient(base_url, timeout=timeout_s, pool_size=concurrency)
        self._client = Client(
            account_sid, auth_token, http_client=self._http, environment=_NO_ENVIRONMENT
        )
        # Resolved once here: the library builds these lazily, and not under a lock.
        self._messages = self._client.messages
        self._calls = self._client.calls
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:
        where = self._base_url or "https://api.twilio.com"
        return f"TwilioSmsSender({self._account_sid}, {where}, concurrency={self._concurrency})"

    # -- SmsSender -------------------------------------------------------------

    def send_batch(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """Send every message; one result per message, in order. Never raises for a message."""
        if len(messages) <= 1 or self._concurrency == 1:
            return [self._send_one(m) for m in messages]
        pool = self._executor()
        futures = [pool.submit(self._send_one, m) for m in messages]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stop the worker threads and close pooled connections. The sender stays usable."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._http.close()

    # -- click-to-call ---------------------------------------------------------

    def place_call(
        self,
        *,
        agent_number: str,
        from_number: str,
        twiml_url: str,
        status_callback_url: str | None = None,
    ) -> str:
        """Ring the SDR at ``agent_number``; once answered, Twilio fetches ``twiml_url``.

        ``from_number`` is the caller ID the SDR sees (a Twilio number of the
        account). The TwiML at ``twiml_url`` (see :func:`bridge_twiml`) dials
        the prospect. ``status_callback_url`` gets the initiated, ringing,
        answered and completed events. Returns the Call SID (``CA...``); raises
        a :mod:`touchflow.errors` error.
        """
        self._http.forget_response()
        try:
            kwargs: dict[str, Any] = {
                "to": _normalize(agent_number, "agent", self._default_region),
                "from_": _normalize(from_number, "from", self._default_region),
                "url": twiml_url,
                "method": "POST",
            }
            if status_callback_url:
                kwargs["status_callback"] = status_callback_url
                kwargs["status_callback_event"] = list(CALL_STATUS_EVENTS)
                kwargs["status_callback_method"] = "POST"
            call = self._calls.create(**kwargs)
        except Exception as exc:
            error = map_twilio_error(exc, "place_call", response=self._http.last_response())
            _log.info("twilio call to agent failed: %s", error)
            raise error from exc
        _log.debug("twilio call %s queued", call.sid)
        return str(call.sid)

    # -- one message -----------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._concurrency, thread_name_prefix="twilio-sms"
                )
            return self._pool

    def _send_one(self, msg: OutboundSms) -> SendResult:
        self._http.forget_response()
        try:
            to = _normalize(msg.to_number, "to", self._default_region)
            from_ = _normalize(msg.from_number, "from", self._default_region)
            callback = (
                _with_touch_key(self._status_callback_url, msg.touch_key)
                if self._status_callback_url
                else None
            )
            message = self._messages.create(
                to=to, from_=from_, body=msg.body, status_callback=callback
            )
            sid = str(message.sid)
            if not sid:
                raise ValueError("Twilio's answer has no message sid")
        except Exception as exc:
            error = map_twilio_error(exc, "send_sms", response=self._http.last_response())
            _log.info("twilio sms for touch %s failed: %s", msg.touch_key, error)
            return SendResult(msg.touch_key, error=error)
        _log.debug("twilio accepted touch %s as %s", msg.touch_key, sid)
        return SendResult(msg.touch_key, provider_id=sid)
