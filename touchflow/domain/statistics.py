"""Honest statistics for reports: intervals for rates, and A/B decisions between variants.

Pure (stdlib only), deterministic: the same counts give the same answer on
every run and every machine.

* :func:`wilson_interval`: the Wilson score interval for a proportion. Unlike
  the textbook normal interval it stays inside [0, 1] and is still sensible at
  0 replies out of 12 sends, which is what early cadence data looks like.
* :func:`prob_best`: for the variants of one step, the posterior probability
  that each has the highest true rate, under independent Beta(1, 1) priors
  (beta-binomial). Exact for two variants (Evan Miller's closed form, summed
  in log space), seeded Monte Carlo for three or more (fixed seed: the same
  counts always give the same probabilities).
* :func:`decide`: the decision rule. A step reports a winner only when every
  variant has at least ``min_sends`` sends AND the leader's probability of
  being best is at least ``threshold`` (defaults 100 and 0.95); until then
  ``"not enough data"``.

Why Bayesian and not a sequential test (SPRT, mSPRT, alpha spending): reports
are looked at every day, by many people, while the test runs. A fixed-horizon
p-value read again and again inflates false positives; a sequential test fixes
that but answers a question managers do not ask ("reject H0 at level alpha")
and needs the effect size chosen in advance. "Variant B has a 97% chance of
being the better one" is what a manager wants, it stays meaningful at every
look (the posterior is the posterior, however often it is read), it extends to
three or more variants without a multiple-comparison correction, and with the
minimum-sends floor it does not crown a winner from the first three replies.
Its cost: P(best) is not an error-rate guarantee; the floor and the 0.95 bar
are what keep early peeking from declaring noise a winner.

Opens are never used to decide: Apple Mail Privacy Protection preloads every
image, so an "open" says little about a person. The decision metric is replies,
or meetings booked when configured.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DECISION_METRICS",
    "NOT_ENOUGH_DATA",
    "Decision",
    "decide",
    "median",
    "percentile",
    "prob_b_beats_a",
    "prob_best",
    "wilson_interval",
]

#: What an A/B decision may be taken on. Opens are deliberately not here.
DECISION_METRICS = ("replies", "meetings")
NOT_ENOUGH_DATA = "not enough data"
Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
MC_DRAWS = 20_000
MC_SEED = 20261206


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) for ``successes`` out of ``trials``.

    ``(0.0, 1.0)`` when there are no trials: nothing is known yet.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def prob_b_beats_a(succ_a: int, n_a: int, succ_b: int, n_b: int) -> float:
    """P(rate_B > rate_A) under Beta(1, 1) priors, exactly (Evan Miller's formula).

    ``sum_{i=0}^{aB-1} B(aA+i, bA+bB) / ((bB+i) B(1+i, bB) B(aA, bA))`` with
    ``a = 1 + successes``, ``b = 1 + failures``; each term in log space.
    """
    a_a, b_a = 1 + succ_a, 1 + n_a - succ_a
    a_b, b_b = 1 + succ_b, 1 + n_b - succ_b
    lb_a = _log_beta(a_a, b_a)
    total = 0.0
    for i in range(a_b):
        total += math.exp(
            _log_beta(a_a + i, b_a + b_b) - math.log(b_b + i) - _log_beta(1 + i, b_b) - lb_a
        )
    return min(1.0, max(0.0, total))


def prob_best(
    counts: Mapping[str, tuple[int, int]], *, draws: int = MC_DRAWS, seed: int = MC_SEED
) -> dict[str, float]:
    """Each variant's posterior probability of having the highest rate.

    ``counts`` maps a variant to ``(successes, trials)``. Two variants: exact;
    more: ``draws`` Monte Carlo draws from a generator seeded with ``seed``
    (deterministic). The probabilities sum to 1.
    """
    names = sorted(counts)
    for name in names:
        s, n = counts[name]
        if n < 0 or s < 0 or s > n:
            raise ValueError(f"variant {name!r}: need 0 <= successes <= trials, got {s}/{n}")
    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: 1.0}
    if len(names) == 2:
        a, b = names
        p_b = prob_b_beats_a(*counts[a], *counts[b])
        return {a: 1.0 - p_b, b: p_b}
    rng = random.Random(seed)
    params = [(1 + counts[v][0], 1 + counts[v][1] - counts[v][0]) for v in names]
    wins = [0] * len(names)
    for _ in range(draws):
        best, best_x = 0, -1.0
        for i, (al, be) in enumerate(params):
            x = rng.betavariate(al, be)
            if x > best_x:
                best, best_x = i, x
        wins[best] += 1
    return {v: w / draws for v, w in zip(names, wins, strict=True)}


@dataclass(frozen=True)
class Decision:
    """The A/B verdict for one step: who leads, how sure, and whether that is enough."""

    metric: str  # replies | meetings
    leader: str | None
    prob_best: float | None  # the leader's
    probabilities: dict[str, float]
    decision: str  # "not enough data" | "<variant> wins"
    min_sends: int
    threshold: float


def decide(
    counts: Mapping[str, tuple[int, int]],
    *,
    metric: str = "replies",
    min_sends: int = 100,
    threshold: float = 0.95,
) -> Decision:
    """The decision rule: a winner only with ``min_sends`` per variant AND P(best) >= ``threshold``.

    ``counts`` maps each variant to ``(replies or meetings, sends)``. The leader
    and its probability are shown even while the decision is "not enough data".
    """
    if metric not in DECISION_METRICS:
        raise ValueError(
            f"an A/B decision is taken on {' or '.join(DECISION_METRICS)}, not {metric!r}"
        )
    probs = prob_best(counts)
    if not probs:
        return Decision(metric, None, None, {}, NOT_ENOUGH_DATA, min_sends, threshold)
    leader = max(sorted(probs), key=lambda v: probs[v])
    enough = len(counts) >= 2 and all(n >= min_sends for _, n in counts.values())
    verdict = f"{leader} wins" if enough and probs[leader] >= threshold else NOT_ENOUGH_DATA
    return Decision(metric, leader, probs[leader], probs, verdict, min_sends, threshold)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between order statistics; None if empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float | None:
    """The median (the mean of the two middle values for an even count); None if empty."""
    return percentile(values, 0.5)
