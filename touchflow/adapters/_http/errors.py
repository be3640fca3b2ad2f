"""HTTP answers become touchflow errors here, once, for every HTTP adapter.

Three rules, each written once and plugged into by the vendors:

* :func:`parse_retry_after`: how long a ``429`` asks us to wait. ``Retry-After``
  in seconds or as an HTTP date, else a vendor's reset header
  (:class:`ResetHeader`: a duration such as Pipedrive's ``x-ratelimit-reset``,
  or an epoch second such as SendGrid's ``X-RateLimit-Reset``).
* :func:`error_for_status`: a status that is not a success becomes

  ::

      429                    RateLimited(retry_after)   (also a vendor code that
                                                         means it: Twilio 20429)
      500-599                RetryableError
      401, 403               FatalError "not authorized"
      any other              FatalError "rejected"  (600 and up: RetryableError
                                                     with retry_above_599)

  The vendor supplies the message (SendGrid's ``errors[].message``, HubSpot's
  ``message``...) and its error code; codes that mean something else entirely
  (Twilio's 21610 opt-out) are the vendor's to check before calling this.
* :func:`error_for_exception`: an exception raised while talking to the vendor,
  through a table (:data:`HTTPX_ERRORS` for httpx): timeouts and connection
  failures are :class:`RetryableError`, anything else :class:`FatalError`.
  Whether a timeout *after the request went out* may be retried is the
  caller's decision (a create sent ``once``, a message that may have been
  queued: :class:`~touchflow.errors.DeliveryUnknown`), not the table's.

Nothing here retries; the callers own their retry loops. The public names are
listed in the package's ``__init__``.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal, Protocol

import httpx

from touchflow.errors import ConnectorError, FatalError, RateLimited, RetryableError


class HeaderLookup(Protocol):
    """Response headers: ``httpx.Headers``, urllib's ``HTTPMessage``, requests' or a plain dict."""

    def get(self, name: str, /) -> Any: ...


NaiveDates = Literal["utc", "ignore"]
"""What a ``Retry-After`` date without a zone (or ``-0000``) means: UTC, or unreadable."""


def _number(value: object) -> float | None:
    if value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ResetHeader:
    """A vendor header telling when the rate-limit window resets.

    ``epoch=False``: the header holds the time left until the reset, ``scale``
    turns its unit into seconds (``0.001`` for milliseconds). ``epoch=True``: it
    holds the epoch second of the reset; the wait is rounded up to a whole second
    (the header's unit), so a caller never retries early.
    """

    name: str
    epoch: bool = False
    scale: float = 1.0

    def seconds(self, headers: HeaderLookup, now: float | None = None) -> float | None:
        """Seconds until the reset (never negative), ``None`` without a readable header."""
        value = _number(headers.get(self.name))
        if value is None:
            return None
        if not self.epoch:
            return max(0.0, value * self.scale)
        try:
            wait = math.ceil(value * self.scale - (time.time() if now is None else now))
        except (ValueError, OverflowError):  # nan, inf
            return None
        return float(max(0, wait))


def _http_date(value: str, naive_dates: NaiveDates) -> float | None:
    """An HTTP date as epoch seconds; ``None`` when it cannot be read."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        if naive_dates == "ignore":
            return None
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_retry_after(
    headers: HeaderLookup | None,
    now: float | None = None,
    *,
    reset_headers: Sequence[ResetHeader] = (),
    naive_dates: NaiveDates = "utc",
) -> float | None:
    """Seconds to wait before trying again, ``None`` when the answer does not say.

    ``Retry-After`` first, as delta-seconds or an HTTP date (``now``: the epoch
    clock, default ``time.time()``); when it is absent or unreadable, the first
    of ``reset_headers`` that can be read. Never negative: a date in the past
    is ``0.0``.
    """
    if headers is None:
        return None
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        seconds = _number(value)
        if seconds is not None:
            return max(0.0, seconds)
        when = _http_date(str(value), naive_dates)
        if when is not None:
            return max(0.0, when - now)
    for reset in reset_headers:
        seconds = reset.seconds(headers, now)
        if seconds is not None:
            return seconds
    return None


def error_for_status(
    status: int,
    *,
    connector: str,
    operation: str,
    message: str,
    vendor_code: str | None = None,
    retry_after: float | None = None,
    rate_limited: bool = False,
    auth_hint: str | None = None,
    retry_above_599: bool = False,
) -> ConnectorError:
    """The error for an HTTP answer that is not a success (see the table in the module docstring).

    ``message``: the vendor's own words for the failure. ``retry_after``: for a
    :class:`RateLimited` (see :func:`parse_retry_after`). ``rate_limited``: the
    vendor's error code says "slow down" whatever the status (Twilio's 20429).
    ``auth_hint``: what to check on a 401/403 ("check the API key").
    ``retry_above_599``: a status of 600 or more (not HTTP) is retryable like a
    5xx instead of fatal; the Twilio and webhook adapters have always done so.
    """
    kw: dict[str, Any] = {
        "connector": connector,
        "operation": operation,
        "status": status,
        "vendor_code": vendor_code,
    }
    if status == 429 or rate_limited:
        return RateLimited(f"rate limited ({message})", retry_after=retry_after, **kw)
    if 500 <= status < 600 or (retry_above_599 and status >= 600):
        return RetryableError(f"server error ({message})", **kw)
    if status in (401, 403):
        hint = f", {auth_hint}" if auth_hint else ""
        return FatalError(f"not authorized{hint} ({message})", **kw)
    return FatalError(f"rejected ({message})", **kw)


ExceptionRule = tuple[
    type[BaseException] | tuple[type[BaseException], ...], type[ConnectorError], str
]
"""One row of an exception table: exception type(s), the touchflow error, what happened."""

HTTPX_ERRORS: tuple[ExceptionRule, ...] = (
    (httpx.TimeoutException, RetryableError, "timed out"),
    # Connect errors, resets, a closed keep-alive connection, protocol errors.
    (httpx.TransportError, RetryableError, "connection failed"),
)
"""httpx's exceptions; what no row names is ``FatalError("request failed")``."""


def describe(exc: object) -> str:
    """``"ConnectError: refused"`` for an exception (its type alone when it says nothing)."""
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc)


def error_for_exception(
    exc: BaseException,
    *,
    connector: str,
    operation: str,
    table: Sequence[ExceptionRule] = HTTPX_ERRORS,
) -> ConnectorError:
    """The error for an exception raised while talking to the vendor, from the first row it matches.

    An adapter with a rule of its own puts its row in front of (or after) the
    shared ones: ``table=(my_row, *HTTPX_ERRORS)``. The error has ``exc`` as its
    ``__cause__``, as if raised ``from`` it.
    """
    error_type: type[ConnectorError] = FatalError
    what = "request failed"
    for types, error_type_, what_ in table:
        if isinstance(exc, types):
            error_type, what = error_type_, what_
            break
    error = error_type(f"{what} ({describe(exc)})", connector=connector, operation=operation)
    error.__cause__ = exc
    return error
