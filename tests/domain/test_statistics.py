"""Wilson intervals, P(best) and the A/B decision rule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchflow.domain.statistics import (
    NOT_ENOUGH_DATA,
    decide,
    median,
    percentile,
    prob_b_beats_a,
    prob_best,
    wilson_interval,
)

counts = st.integers(0, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


def test_wilson_known_values() -> None:
    # Reference values (Wilson 1927; e.g. statsmodels proportion_confint method="wilson").
    low, high = wilson_interval(10, 100)
    assert low == pytest.approx(0.05523, abs=1e-4)
    assert high == pytest.approx(0.17437, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.16113, abs=1e-4)


@given(counts)
def test_wilson_contains_the_rate_and_stays_in_unit(c: tuple[int, int]) -> None:
    s, n = c
    low, high = wilson_interval(s, n)
    assert 0.0 <= low <= high <= 1.0
    if n:
        assert low <= s / n <= high


@given(st.integers(1, 500))
def test_wilson_narrows_with_more_data(n: int) -> None:
    a = wilson_interval(n // 4, n)
    b = wilson_interval(4 * (n // 4), 4 * n)
    assert b[1] - b[0] <= a[1] - a[0] + 1e-12


def test_exact_matches_monte_carlo() -> None:
    exact = prob_b_beats_a(30, 400, 45, 400)
    rng = random.Random(1)
    draws = 200_000
    mc = sum(rng.betavariate(46, 356) > rng.betavariate(31, 371) for _ in range(draws)) / draws
    assert exact == pytest.approx(mc, abs=0.005)
    assert 0.9 < exact < 0.99


@settings(max_examples=60)
@given(counts, counts)
def test_two_variants_symmetric_and_sum_to_one(a: tuple[int, int], b: tuple[int, int]) -> None:
    p = prob_best({"a": a, "b": b})
    assert p["a"] + p["b"] == pytest.approx(1.0)
    q = prob_best({"x": b, "y": a})
    assert q["x"] == pytest.approx(p["b"], abs=1e-9)
    if a == b:
        assert p["a"] == pytest.approx(0.5, abs=1e-9)


@settings(max_examples=40)
@given(counts, st.integers(1, 50))
def test_more_successes_raise_the_chance(a: tuple[int, int], extra: int) -> None:
    s, n = a
    if s + extra > n:
        return
    base = prob_b_beats_a(s, n, s, n)
    better = prob_b_beats_a(s, n, s + extra, n)
    assert better > base


def test_three_variants_deterministic() -> None:
    c = {"a": (10, 200), "b": (20, 200), "c": (12, 200)}
    assert prob_best(c) == prob_best(c)
    p = prob_best(c)
    assert sum(p.values()) == pytest.approx(1.0)
    assert max(p, key=lambda v: p[v]) == "b"


def test_decision_rule() -> None:
    few = decide({"a": (1, 20), "b": (9, 20)})
    assert few.decision == NOT_ENOUGH_DATA and few.leader == "b" and few.prob_best > 0.95
    close = decide({"a": (20, 400), "b": (22, 400)})
    assert close.decision == NOT_ENOUGH_DATA
    clear = decide({"a": (20, 400), "b": (50, 400)})
    assert clear.decision == "b wins" and clear.prob_best >= 0.95
    one = decide({"a": (50, 400)})
    assert one.decision == NOT_ENOUGH_DATA
    meetings = decide({"a": (2, 400), "b": (15, 400)}, metric="meetings")
    assert meetings.metric == "meetings" and meetings.decision == "b wins"
    with pytest.raises(ValueError, match="opens"):
        decide({"a": (1, 2)}, metric="opens")


def test_quantiles() -> None:
    assert median([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert percentile([float(i) for i in range(11)], 0.9) == 9.0
