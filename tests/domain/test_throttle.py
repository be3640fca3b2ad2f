"""The sign-in throttle: a sliding window of failures per key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchflow.domain.throttle import FailureThrottle


def test_locks_after_limit_failures_until_the_oldest_ages_out() -> None:
    t = FailureThrottle(limit=3, window_s=60)
    for at in (0, 10, 20):
        assert t.retry_after("a", at) is None
        t.failed("a", at)
    assert t.retry_after("a", 21) == pytest.approx(39)  # the failure at 0 ages out at 60
    assert t.retry_after("b", 21) is None  # keys are separate
    assert t.retry_after("a", 60) is None
    t.failed("a", 60)  # three within the window again: 10, 20, 60
    assert t.retry_after("a", 61) == pytest.approx(9)


def test_forget_clears_a_key() -> None:
    t = FailureThrottle(limit=1, window_s=60)
    t.failed("a", 0)
    assert t.retry_after("a", 1) is not None
    t.forget("a")
    assert t.retry_after("a", 1) is None


def test_memory_is_bounded_by_forgetting_the_least_recently_failed() -> None:
    t = FailureThrottle(limit=1, window_s=60, max_keys=2)
    t.failed("a", 0)
    t.failed("b", 1)
    t.failed("a", 2)  # a is now the most recent
    t.failed("c", 3)
    assert t.retry_after("b", 4) is None
    assert t.retry_after("a", 4) is not None and t.retry_after("c", 4) is not None


def test_rejects_a_meaningless_policy() -> None:
    with pytest.raises(ValueError):
        FailureThrottle(limit=0, window_s=60)


@given(st.lists(st.floats(min_value=0, max_value=1000), max_size=40), st.integers(1, 5))
def test_locked_exactly_when_limit_failures_lie_inside_the_window(
    times: list[float], limit: int
) -> None:
    times = sorted(times)
    t = FailureThrottle(limit=limit, window_s=100)
    for at in times:
        t.failed("k", at)
    now = (times[-1] if times else 0) + 0.5
    inside = [x for x in times if x > now - 100]
    assert (t.retry_after("k", now) is not None) == (len(inside) >= limit)
