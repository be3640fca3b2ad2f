"""Shared HTTP plumbing for the CRM connectors (HubSpot, Pipedrive, Salesforce).

One :class:`CrmHttp` per connector instance owns one keep-alive
``httpx.Client`` and offers :meth:`CrmHttp.request`, which:

* sends the request with the connector's auth (headers and/or query params);
* retries **only** retryable failures: ``429`` (waiting ``Retry-After`` or the
  vendor's reset header when given, else backoff), ``5xx``, timeouts and
  connection errors; with capped exponential backoff plus jitter and at most
  ``RetryPolicy.max_attempts`` attempts in all;
* never retries ``401``/``403``/other ``4xx``: they are :class:`FatalError` at once;
* slows down *before* the vendor says no: when a response reports that the
  remaining quota of the current window is at or below
  ``QuotaHeaders.low_water``, the next request waits (see
  :meth:`QuotaHeaders.pause`);
* turns the final failure into a :mod:`touchflow.errors` error carrying
  ``connector``, ``operation``, ``status`` and the vendor's error code, raised
  ``from`` the httpx exception when there was one.

The rules themselves (status -> error, ``Retry-After``, the httpx exception
table) are the ones every HTTP adapter shares, in
:mod:`touchflow.adapters._http.errors`. :func:`map_status` plugs a vendor into
them: its :data:`ErrorParser`, which pulls the message and code out of an error
body (``hubspot_error``, ``pipedrive_error`` here; the Salesforce connector
passes its own), and its quota headers, described by a :class:`QuotaHeaders`
(``HUBSPOT_QUOTA``, ``PIPEDRIVE_QUOTA``; pass ``None`` for a vendor that
publishes none).

Usage (any vendor)::

    http = CrmHttp(
        connector="salesforce",
        base_url=instance_url,
        headers={"Authorization": f"Bearer {token}"},
        error_parser=my_error_parser,
        quota=None,
        retry=RetryPolicy(max_attempts=4),
    )
    body = http.request("GET", "/services/data/v60.0/query", operation="query", params={...})

Request bodies must be safe to send twice: a timeout after the request went
out is retried like any other timeout, so connectors use upserts or
check-then-create where the vendor has no idempotency key.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from touchflow.adapters._http.errors import (
    ResetHeader,
    describe,
    error_for_exception,
    error_for_status,
    parse_retry_after,
)
from touchflow.errors import ConnectorError, FatalError, RateLimited, RetryableError

__all__ = [
    "HUBSPOT_QUOTA",
    "PIPEDRIVE_QUOTA",
    "CrmHttp",
    "ErrorParser",
    "QuotaHeaders",
    "RetryPolicy",
    "hubspot_error",
    "map_status",
    "pipedrive_error",
    "retry_after_seconds",
]

_log = logging.getLogger(__name__)

ErrorParser = Callable[[httpx.Response], tuple[str, str | None]]
"""Pull ``(message, vendor_code)`` out of an error response; must not raise."""

_MAX_TEXT = 500


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently :meth:`CrmHttp.request` retries.

    The wait before retry ``n`` (1-based) is ``min(backoff_max_s,
    backoff_base_s * 2 ** (n - 1))`` scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``; a ``Retry-After`` (or vendor reset header)
    replaces it, capped at ``max_retry_after_s``: a vendor asking for longer
    than that gets :class:`RateLimited` back so the caller can reschedule.
    """

    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    jitter: float = 0.25
    max_retry_after_s: float = 60.0

    def backoff(self, retry: int, rand: float) -> float:
        """The wait before retry number ``retry`` (1-based); ``rand`` in [0, 1)."""
        base = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, retry - 1))
        return max(0.0, base * (1 - self.jitter + 2 * self.jitter * rand))


@dataclass(frozen=True)
class QuotaHeaders:
    """Where a vendor reports its rate-limit window on every response.

    ``remaining``: requests left in the window. ``reset``: a duration header
    (``reset_scale`` converts it to seconds): for HubSpot the window length
    (``X-HubSpot-RateLimit-Interval-Milliseconds``, a rolling 10 s window), for
    Pipedrive the seconds until the window resets (``x-ratelimit-reset``).
    """

    remaining: str
    reset: str | None = None
    reset_scale: float = 1.0
    low_water: int = 2
    max_pause_s: float = 10.0
    # True when ``reset`` is the time until the window resets (a 429 without
    # Retry-After waits that long); False when it is only the window's length.
    reset_is_wait: bool = True

    @property
    def reset_header(self) -> ResetHeader | None:
        """``reset`` for :func:`~touchflow.adapters._http.errors.parse_retry_after`."""
        return None if self.reset is None else ResetHeader(self.reset, scale=self.reset_scale)

    def reset_seconds(self, headers: httpx.Headers) -> float | None:
        reset = self.reset_header
        return None if reset is None else reset.seconds(headers)

    def pause(self, headers: httpx.Headers) -> float:
        """How long to wait before the next request, given a response's headers.

        Nothing while more than ``low_water`` requests remain; otherwise the
        rest of the window is spread over the requests left (``reset / (remaining
        + 1)``), capped at ``max_pause_s``; a window of unknown length pauses 1 s.
        """
        remaining = _number(headers.get(self.remaining))
        if remaining is None or remaining > self.low_water:
            return 0.0
        window = self.reset_seconds(headers)
        pause = 1.0 if window is None else window / (max(remaining, 0) + 1)
        return min(self.max_pause_s, pause)


HUBSPOT_QUOTA = QuotaHeaders(
    remaining="X-HubSpot-RateLimit-Remaining",
    reset="X-HubSpot-RateLimit-Interval-Milliseconds",
    reset_scale=0.001,
    reset_is_wait=False,
)
PIPEDRIVE_QUOTA = QuotaHeaders(remaining="x-ratelimit-remaining", reset="x-ratelimit-reset")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def retry_after_seconds(
    headers: httpx.Headers, quota: QuotaHeaders | None, now: float | None = None
) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or HTTP date), else the vendor's reset."""
    reset = quota.reset_header if quota is not None and quota.reset_is_wait else None
    return parse_retry_after(headers, now, reset_headers=() if reset is None else (reset,))


def _text(response: httpx.Response) -> str:
    try:
        text = response.text
    except Exception:  # undecodable body: the status says enough
        return response.reason_phrase
    return (text or response.reason_phrase)[:_MAX_TEXT]


def _json_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except Exception:
        return None
    return body if isinstance(body, dict) else None


def hubspot_error(response: httpx.Response) -> tuple[str, str | None]:
    """HubSpot: ``{"status": "error", "message", "correlationId", "category", "errorType"?}``."""
    body = _json_body(response)
    if body is None:
        return _text(response), None
    message = str(body.get("message") or _text(response))
    if body.get("correlationId"):
        message = f"{message} (correlationId {body['correlationId']})"
    code = body.get("errorType") or body.get("category")
    return message, str(code) if code else None


def pipedrive_error(response: httpx.Response) -> tuple[str, str | None]:
    """Pipedrive: ``{"success": false, "error", "error_info"?, "errorCode"?}``."""
    body = _json_body(response)
    if body is None:
        return _text(response), None
    message = str(body.get("error") or _text(response))
    if body.get("error_info"):
        message = f"{message} ({body['error_info']})"
    code = body.get("errorCode") if body.get("errorCode") is not None else body.get("code")
    return message, str(code) if code is not None else None


def map_status(
    response: httpx.Response,
    *,
    connector: str,
    operation: str,
    error_parser: ErrorParser,
    quota: QuotaHeaders | None = None,
    now: float | None = None,
) -> ConnectorError:
    """The error for a non-2xx response: the vendor's message and code, the shared rule."""
    message, code = error_parser(response)
    return error_for_status(
        response.status_code,
        connector=connector,
        operation=operation,
        message=message,
        vendor_code=code,
        retry_after=retry_after_seconds(response.headers, quota, now),
    )


#: Transport errors raised before the request could reach the vendor.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class CrmHttp:
    """One keep-alive ``httpx.Client`` plus retry, slow-down and error mapping. Thread-safe."""

    def __init__(
        self,
        *,
        connector: str,
        base_url: str,
        error_parser: ErrorParser,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        quota: QuotaHeaders | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        max_connections: int = 10,
    ) -> None:
        self.connector = connector
        self.error_parser = error_parser
        self.quota = quota
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self._lock = threading.Lock()
        self._not_before = 0.0  # monotonic time before which no request goes out
        self.requests_sent = 0
        self.retries = 0
        self.slowdowns = 0
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Accept": "application/json", **(headers or {})},
            params=dict(params or {}),
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        once: bool = False,
    ) -> Any:
        """Send, retrying retryable failures; the decoded JSON body (None if empty).

        ``once``: the request creates a record and has no idempotency key, so it
        is resent only when it surely did not take effect (the connection never
        opened, or a 429). A timeout or a 5xx after it went out is raised to the
        caller instead, which looks the record up before creating it again.
        """
        attempts = max(1, self.retry.max_attempts)
        for attempt in range(1, attempts + 1):
            self._wait_for_quota()
            error: ConnectorError
            wait: float | None = None
            unsent = False  # surely not taken by the vendor: safe to resend a create
            try:
                with self._lock:
                    self.requests_sent += 1
                response = self._client.request(method, path, params=params, json=json)
            except httpx.HTTPError as exc:
                error = error_for_exception(exc, connector=self.connector, operation=operation)
                unsent = isinstance(exc, _NOT_SENT)
            else:
                self._note_quota(response)
                if response.is_success:
                    if not response.content:
                        return None
                    try:
                        return response.json()
                    except ValueError as exc:  # undecodable JSON in a 2xx answer
                        raise FatalError(
                            f"unexpected response body ({describe(exc)})",
                            connector=self.connector,
                            operation=operation,
                        ) from exc
                error = map_status(
                    response,
                    connector=self.connector,
                    operation=operation,
                    error_parser=self.error_parser,
                    quota=self.quota,
                )
                if isinstance(error, RateLimited):
                    wait = error.retry_after
                    unsent = True
            if not isinstance(error, RetryableError) or attempt == attempts:
                raise error
            if once and not unsent:
                raise error
            if wait is not None and wait > self.retry.max_retry_after_s:
                raise error  # longer than we wait in-process: the caller reschedules
            if wait is None:
                wait = self.retry.backoff(attempt, self._rand())
            with self._lock:
                self.retries += 1
            _log.info(
                "%s.%s attempt %d/%d failed (%s); retrying in %.2fs",
                self.connector,
                operation,
                attempt,
                attempts,
                error,
                wait,
            )
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_quota(self, response: httpx.Response) -> None:
        if self.quota is None or response.status_code == 429:
            return
        pause = self.quota.pause(response.headers)
        if pause > 0:
            with self._lock:
                self.slowdowns += 1
                self._not_before = max(self._not_before, time.monotonic() + pause)

    def _wait_for_quota(self) -> None:
        with self._lock:
            delay = self._not_before - time.monotonic()
        if delay > 0:
            self._sleep(delay)

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()
