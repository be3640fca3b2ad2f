"""The rules every HTTP adapter shares: Retry-After, status -> error, the exception table."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from touchflow.adapters._http import (
    HTTPX_ERRORS,
    ResetHeader,
    describe,
    error_for_exception,
    error_for_status,
    parse_retry_after,
)
from touchflow.errors import FatalError, RateLimited, RetryableError

NOW = 1_700_000_000.0


def _date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


# -- parse_retry_after -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0)],
)
def test_retry_after_in_seconds(value: str, expected: float) -> None:
    assert parse_retry_after({"Retry-After": value}, NOW) == expected


def test_retry_after_as_an_http_date_in_the_future() -> None:
    assert parse_retry_after({"Retry-After": _date(NOW + 12)}, NOW) == 12.0


def test_retry_after_as_an_http_date_in_the_past_is_no_wait() -> None:
    assert parse_retry_after({"Retry-After": _date(NOW - 3600)}, NOW) == 0.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, NOW) == 0.0


def test_retry_after_date_defaults_to_the_wall_clock() -> None:
    import time

    wait = parse_retry_after({"Retry-After": _date(time.time() + 100)})
    assert wait is not None and 98 <= wait <= 100


@pytest.mark.parametrize(
    "value", ["soon", "", "Wed, 41 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 99999999999 07:28:00 GMT"]
)
def test_garbage_retry_after_is_unknown(value: str) -> None:
    assert parse_retry_after({"Retry-After": value}, NOW) is None


def test_no_headers_at_all_is_unknown() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after({}, NOW) is None
    assert parse_retry_after(httpx.Headers(), NOW) is None


def test_header_names_are_looked_up_as_the_headers_object_does() -> None:
    headers = httpx.Headers({"retry-after": "4", "X-RATELIMIT-RESET": "9"})
    assert parse_retry_after(headers, NOW) == 4.0
    del headers["retry-after"]
    assert parse_retry_after(headers, NOW, reset_headers=(ResetHeader("x-ratelimit-reset"),)) == 9


def test_a_date_without_zone_is_utc_or_ignored_as_asked() -> None:
    naive = "Tue, 14 Nov 2023 22:13:40 -0000"  # NOW + 20 s, "-0000": no zone information
    assert parse_retry_after({"Retry-After": naive}, NOW) == 20.0
    assert parse_retry_after({"Retry-After": naive}, NOW, naive_dates="ignore") is None
    reset = (ResetHeader("X-RateLimit-Reset", epoch=True),)
    headers = {"Retry-After": naive, "X-RateLimit-Reset": str(int(NOW) + 5)}
    assert parse_retry_after(headers, NOW, reset_headers=reset, naive_dates="ignore") == 5.0


def test_vendor_reset_as_a_duration() -> None:
    seconds = ResetHeader("x-ratelimit-reset")
    millis = ResetHeader("X-Reset-Ms", scale=0.001)
    assert parse_retry_after({"x-ratelimit-reset": "2"}, NOW, reset_headers=(seconds,)) == 2.0
    assert parse_retry_after({"X-Reset-Ms": "1500"}, NOW, reset_headers=(millis,)) == 1.5
    assert parse_retry_after({"x-ratelimit-reset": "-1"}, NOW, reset_headers=(seconds,)) == 0.0
    # Without the vendor header named, a reset header is not read.
    assert parse_retry_after({"x-ratelimit-reset": "2"}, NOW) is None


def test_vendor_reset_as_an_epoch_is_rounded_up() -> None:
    reset = (ResetHeader("X-RateLimit-Reset", epoch=True),)
    now = NOW + 0.5
    assert (
        parse_retry_after({"X-RateLimit-Reset": str(int(NOW) + 30)}, now, reset_headers=reset) == 30
    )
    assert (
        parse_retry_after({"X-RateLimit-Reset": str(int(NOW) - 60)}, now, reset_headers=reset) == 0
    )
    for garbage in ("later", "nan", "inf", ""):
        assert parse_retry_after({"X-RateLimit-Reset": garbage}, now, reset_headers=reset) is None


def test_retry_after_wins_over_the_vendor_reset_and_garbage_falls_back_to_it() -> None:
    reset = (ResetHeader("X-RateLimit-Reset", epoch=True),)
    epoch = str(int(NOW) + 30)
    both = {"Retry-After": "3", "X-RateLimit-Reset": epoch}
    assert parse_retry_after(both, NOW, reset_headers=reset) == 3.0
    garbled = {"Retry-After": "whenever", "X-RateLimit-Reset": epoch}
    assert parse_retry_after(garbled, NOW, reset_headers=reset) == 30.0


def test_the_first_readable_reset_header_counts() -> None:
    resets = (ResetHeader("A-Reset"), ResetHeader("B-Reset"))
    assert parse_retry_after({"A-Reset": "x", "B-Reset": "4"}, NOW, reset_headers=resets) == 4.0
    assert parse_retry_after({"A-Reset": "1", "B-Reset": "4"}, NOW, reset_headers=resets) == 1.0


# -- error_for_status ------------------------------------------------------------


def _error(status: int, **kw: object):
    return error_for_status(
        status, connector="acme", operation="push", message="the vendor's words", **kw
    )


def test_429_is_rate_limited_with_its_wait() -> None:
    error = _error(429, retry_after=7.0, vendor_code="RATE")
    assert type(error) is RateLimited
    assert error.retry_after == 7.0
    assert (error.status, error.vendor_code) == (429, "RATE")
    assert (error.connector, error.operation) == ("acme", "push")
    assert str(error) == "acme.push status 429 code RATE: rate limited (the vendor's words)"


def test_429_without_a_wait_leaves_it_to_the_caller() -> None:
    error = _error(429)
    assert isinstance(error, RateLimited) and error.retry_after is None


def test_a_vendor_code_may_mean_rate_limited_under_another_status() -> None:
    error = _error(400, vendor_code="20429", retry_after=1.0, rate_limited=True)
    assert type(error) is RateLimited
    assert error.status == 400 and error.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_5xx_is_retryable(status: int) -> None:
    error = _error(status, retry_after=5.0)
    assert type(error) is RetryableError
    assert error.status == status
    assert "server error (the vendor's words)" in str(error)


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_fatal_auth_failures(status: int) -> None:
    error = _error(status)
    assert type(error) is FatalError
    assert str(error).endswith("not authorized (the vendor's words)")
    hinted = _error(status, auth_hint="check the API key")
    assert str(hinted).endswith("not authorized, check the API key (the vendor's words)")


@pytest.mark.parametrize("status", [400, 404, 405, 408, 409, 422, 451])
def test_other_4xx_are_fatal(status: int) -> None:
    error = _error(status)
    assert type(error) is FatalError
    assert error.status == status
    assert str(error).endswith("rejected (the vendor's words)")


@pytest.mark.parametrize("status", [301, 600, 999])
def test_a_status_outside_4xx_and_5xx_is_fatal(status: int) -> None:
    assert type(_error(status)) is FatalError


def test_a_status_above_599_is_retryable_only_when_asked() -> None:
    assert type(_error(600, retry_above_599=True)) is RetryableError
    assert type(_error(503, retry_above_599=True)) is RetryableError
    assert type(_error(404, retry_above_599=True)) is FatalError


# -- error_for_exception ---------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected", "what"),
    [
        (httpx.ReadTimeout("read timed out"), RetryableError, "timed out"),
        (httpx.ConnectTimeout("connect timed out"), RetryableError, "timed out"),
        (httpx.PoolTimeout("no connection free"), RetryableError, "timed out"),
        (httpx.ConnectError("refused"), RetryableError, "connection failed"),
        (httpx.RemoteProtocolError("closed"), RetryableError, "connection failed"),
        (httpx.UnsupportedProtocol("ftp://"), RetryableError, "connection failed"),
        (httpx.DecodingError("bad gzip"), FatalError, "request failed"),
        (httpx.TooManyRedirects("loop"), FatalError, "request failed"),
        (RuntimeError("surprise"), FatalError, "request failed"),
    ],
)
def test_httpx_exceptions_through_the_table(exc: Exception, expected: type, what: str) -> None:
    error = error_for_exception(exc, connector="acme", operation="push")
    assert type(error) is expected
    assert error.__cause__ is exc
    assert error.status is None
    assert f"{what} ({type(exc).__name__}: {exc})" in str(error)


def test_an_adapter_row_in_front_of_the_shared_ones_wins() -> None:
    table = (((httpx.UnsupportedProtocol, httpx.InvalidURL), FatalError, "bad URL"), *HTTPX_ERRORS)
    bad = error_for_exception(
        httpx.UnsupportedProtocol("ftp://"), connector="a", operation="b", table=table
    )
    assert type(bad) is FatalError and "bad URL" in str(bad)
    timeout = error_for_exception(
        httpx.ReadTimeout("slow"), connector="a", operation="b", table=table
    )
    assert type(timeout) is RetryableError


def test_describe_names_the_type_and_the_text() -> None:
    assert describe(ValueError("no JSON")) == "ValueError: no JSON"
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe("plain reason") == "plain reason"
