"""The shared CRM HTTP plumbing, against ``httpx.MockTransport`` handlers."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from touchflow.adapters._http.client import (
    HUBSPOT_QUOTA,
    PIPEDRIVE_QUOTA,
    CrmHttp,
    RetryPolicy,
    hubspot_error,
    pipedrive_error,
    retry_after_seconds,
)
from touchflow.errors import FatalError, RateLimited, RetryableError


def _client(
    handler: Callable[[httpx.Request], httpx.Response],
    sleeps: list[float],
    *,
    quota=PIPEDRIVE_QUOTA,
    parser=pipedrive_error,
) -> CrmHttp:
    return CrmHttp(
        connector="pipedrive",
        base_url="https://crm.test",
        error_parser=parser,
        quota=quota,
        retry=RetryPolicy(max_attempts=3, backoff_base_s=0.1, backoff_max_s=0.3, jitter=0.0),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        rand=lambda: 0.5,
    )


def test_backoff_is_capped_exponential() -> None:
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=5.0, jitter=0.5)
    assert [policy.backoff(n, 0.5) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.backoff(1, 0.0) == 0.5 and policy.backoff(1, 0.999) < 1.5


def test_retry_after_prefers_header_then_vendor_reset() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "3"}), PIPEDRIVE_QUOTA) == 3
    assert retry_after_seconds(httpx.Headers({"x-ratelimit-reset": "2"}), PIPEDRIVE_QUOTA) == 2
    # HubSpot's interval header is the window length, not a wait.
    headers = httpx.Headers({"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    assert retry_after_seconds(headers, HUBSPOT_QUOTA) is None


def test_retries_5xx_then_succeeds() -> None:
    answers = iter([503, 502, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, json={"success": status == 200, "error": "down"})

    sleeps: list[float] = []
    assert _client(handler, sleeps).request("GET", "/v1/users", operation="x")["success"]
    assert sleeps == [0.1, 0.2]


def test_429_waits_the_vendor_reset_and_gives_up_as_rate_limited() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"success": False, "error": "Rate limit", "errorCode": 429}
        return httpx.Response(429, json=body, headers={"x-ratelimit-reset": "2"})

    sleeps: list[float] = []
    with pytest.raises(RateLimited) as caught:
        _client(handler, sleeps).request("GET", "/v1/users", operation="list_owners")
    assert sleeps == [2.0, 2.0]
    assert caught.value.retry_after == 2.0 and caught.value.vendor_code == "429"


def test_4xx_is_fatal_at_once_with_vendor_message() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {
            "status": "error",
            "message": "Authentication credentials not found",
            "correlationId": "c-1",
            "category": "INVALID_AUTHENTICATION",
        }
        return httpx.Response(401, json=body)

    with pytest.raises(FatalError) as caught:
        _client(handler, [], quota=HUBSPOT_QUOTA, parser=hubspot_error).request(
            "GET", "/crm/v3/owners", operation="list_owners"
        )
    assert len(calls) == 1
    assert caught.value.status == 401 and caught.value.vendor_code == "INVALID_AUTHENTICATION"
    assert "Authentication credentials not found" in str(caught.value)


def test_connect_errors_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetryableError) as caught:
        _client(handler, []).request("GET", "/v1/users", operation="list_owners")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_slows_down_when_the_quota_runs_low() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"x-ratelimit-remaining": "1", "x-ratelimit-reset": "2"}
        return httpx.Response(200, json={"success": True}, headers=headers)

    sleeps: list[float] = []
    http = _client(handler, sleeps)
    http.request("GET", "/v1/users", operation="x")
    assert sleeps == []
    http.request("GET", "/v1/users", operation="x")
    assert len(sleeps) == 1 and 0.9 < sleeps[0] <= 1.0  # 2 s spread over the 2 left
    assert http.slowdowns == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server closed the connection"),
        503,
    ],
    ids=["read-timeout", "reset-after-send", "503"],
)
def test_a_create_that_may_have_been_taken_is_not_resent(failure: Exception | int) -> None:
    """A create without an idempotency key (``once``) is not sent twice by the plumbing."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(failure, Exception):
            raise failure
        return httpx.Response(failure, json={"success": False, "error": "busy"})

    sleeps: list[float] = []
    http = _client(handler, sleeps)
    with pytest.raises(RetryableError):
        http.request("POST", "/v1/organizations", operation="upsert_company", json={}, once=True)
    assert len(seen) == 1 and sleeps == []
    # The same failure on a request that may be repeated is retried as usual.
    seen.clear()
    with pytest.raises(RetryableError):
        http.request("GET", "/v1/organizations/search", operation="upsert_company")
    assert len(seen) == 3


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("connection refused"), 429],
    ids=["connect-refused", "429"],
)
def test_a_create_that_surely_was_not_taken_is_resent(failure: Exception | int) -> None:
    answers = iter([failure, 201])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"success": answer == 201, "data": {"id": 7}})

    sleeps: list[float] = []
    http = _client(handler, sleeps)
    answer = http.request(
        "POST", "/v1/organizations", operation="upsert_company", json={}, once=True
    )
    assert answer["data"]["id"] == 7 and len(sleeps) == 1
