"""A semi-Markov model of the pipeline, learned from the stage history.

The open stages plus two absorbing states (won, lost). Time moves in steps
of ``STEP_DAYS``; a deal's state is (stage, steps spent in it so far). For
every stage and step-in-stage the model holds the hazard of leaving for each
destination (any other stage, a regression included, won or lost), counted
from every stay known at the cut: finished stays give the exit, stays still
running give their exposure (censoring), so slow deals are not forgotten.

Few observations are shrunk toward the stage's pooled (all steps) rates:
``(exits + m * pooled) / (exposure + m)``; a stage never seen falls back on
the rates pooled over all stages.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from statistics import median

from touchflow.domain.deals import DealOutcome
from touchflow.domain.forecasting._history import KnownDeal, KnownHistory

STEP_DAYS = 3  # finer steps cost time; weekly ones made deals a few days slow a stage
BUCKETS = 60  # steps in stage; the last bucket holds every longer stay
PRIOR_STEPS = 12.0  # shrinkage strength, in steps of exposure


@dataclass(frozen=True)
class Stay:
    """One stay in an open stage: ``dest`` is a stage, ``won``, ``lost`` or None (still there)."""

    stage: str
    start: datetime
    end: datetime
    dest: str | None


def steps_in(days: int) -> int:
    """Days as whole steps, rounded half up."""
    return (2 * days + STEP_DAYS) // (2 * STEP_DAYS)


def survived(days: int) -> int:
    """Steps a stay still running after ``days`` has come through (the bucket it is in now)."""
    return max(0, (2 * days - STEP_DAYS) // (2 * STEP_DAYS))


WON = "won"
LOST = "lost"


def stays_of(deal: KnownDeal, stages: tuple[str, ...], as_of: datetime) -> list[Stay]:
    """The deal's stays in open stages, the last one ended by its outcome or still running."""
    open_set = set(stages)
    path: list[tuple[str, datetime]] = []
    for stage, at in deal.path:
        if stage not in open_set:
            continue
        if path and path[-1][0] == stage:
            continue
        path.append((stage, at))
    out: list[Stay] = []
    for (stage, start), (nxt, end) in itertools.pairwise(path):
        out.append(Stay(stage, start, end, nxt))
    if path:
        stage, start = path[-1]
        if deal.outcome is not None and deal.closed_at is not None:
            dest = WON if deal.outcome is DealOutcome.WON else LOST
            out.append(Stay(stage, start, max(start, deal.closed_at), dest))
        else:
            out.append(Stay(stage, start, max(start, as_of), None))
    return out


@dataclass(frozen=True)
class StageModel:
    """Exit hazards per (stage, step in stage) and what they imply."""

    stages: tuple[str, ...]
    # hazards[s][b][d]: d indexes stages, then won, then lost
    hazards: tuple[tuple[tuple[float, ...], ...], ...]
    typical_days: tuple[float | None, ...]
    finished_stays: tuple[int, ...]

    @property
    def destinations(self) -> int:
        return len(self.stages) + 2

    def index(self, stage: str) -> int:
        return self.stages.index(stage)

    def period_probabilities(
        self, step_period: list[int], won_factor: list[float], periods: int
    ) -> list[list[list[float]]]:
        """``out[s][b][p]``: probability of being won during period ``p`` from (s, b) now.

        ``step_period[t]`` is the period step ``t`` (the step after ``t`` steps)
        falls in, -1 for none; ``won_factor[t]`` scales the closing hazards
        (won and lost together, so the odds stay) in that step: the calendar's
        pull, e.g. quarter ends. Backward induction over
        the steps, once per period.
        """
        n, k = len(self.stages), BUCKETS
        won = n
        horizon = len(step_period)
        h = self.hazards
        wins = [[h[s][b][won] for b in range(k)] for s in range(n)]
        closing = [[h[s][b][won] + h[s][b][won + 1] for b in range(k)] for s in range(n)]
        moving = [[sum(h[s][b][:n]) for b in range(k)] for s in range(n)]
        moves = [
            [
                (d, [h[s][b][d] for b in range(k)])
                for d in range(n)
                if any(h[s][b][d] for b in range(k))
            ]
            for s in range(n)
        ]
        scaled: dict[float, tuple[list[list[float]], list[list[float]]]] = {}

        def at_factor(f: float) -> tuple[list[list[float]], list[list[float]]]:
            # Closing (won and lost alike) speeds up or slows down; its odds stay,
            # and it never takes more than the stay leaves.
            if f not in scaled:
                won_now, stay = [], []
                for s in range(n):
                    g = [
                        min(f, (1.0 - m) / c) if c > 0 else 1.0
                        for m, c in zip(moving[s], closing[s], strict=True)
                    ]
                    won_now.append([w * x for w, x in zip(wins[s], g, strict=True)])
                    stay.append(
                        [1.0 - m - c * x for m, c, x in zip(moving[s], closing[s], g, strict=True)]
                    )
                scaled[f] = (won_now, stay)
            return scaled[f]

        out = [[[0.0] * periods for _ in range(k)] for _ in range(n)]
        for p in range(periods):
            last = max((t for t in range(horizon) if step_period[t] == p), default=-1)
            if last < 0:
                continue
            nxt = [[0.0] * k for _ in range(n)]
            for t in range(last, -1, -1):
                won_now, stay = at_factor(won_factor[t])
                counts = step_period[t] == p
                cur = []
                for s in range(n):
                    ns = nxt[s]
                    shifted = ns[1:] + ns[-1:]
                    row = [a * b for a, b in zip(stay[s], shifted, strict=True)]
                    if counts:
                        row = [r + w for r, w in zip(row, won_now[s], strict=True)]
                    for d, col in moves[s]:
                        z = nxt[d][0]
                        if z:
                            row = [r + c * z for r, c in zip(row, col, strict=True)]
                    cur.append(row)
                nxt = cur
            for s in range(n):
                for b in range(k):
                    out[s][b][p] = nxt[s][b]
        return out

    def eventual_win(self) -> list[list[float]]:
        """``out[s][b]``: probability of being won at all from (s, b), by fixed-point iteration."""
        n, k = len(self.stages), BUCKETS
        won = n
        e = [[0.0] * k for _ in range(n)]
        for _ in range(500):
            change = 0.0
            for s in range(n):
                row = e[s]
                for b in range(k - 1, -1, -1):
                    h = self.hazards[s][b]
                    stay = 1.0 - sum(h)
                    move = h[won] + sum(h[d] * e[d][0] for d in range(n) if h[d])
                    if b == k - 1:
                        v = move / (1.0 - stay) if stay < 1.0 else 0.0
                    else:
                        v = move + stay * row[b + 1]
                    change = max(change, abs(v - row[b]))
                    row[b] = v
            if change < 1e-10:
                break
        return e


@dataclass(frozen=True)
class Observations:
    """Every stay known at the cut, as the model counts it.

    ``kinds`` maps (stage, covered, exit, dest) to how many stays were like
    that: ``covered`` is the steps of exposure, ``exit`` the bucket the stay
    ended in and ``dest`` the destination's index (both -1 while it runs).
    """

    stages: tuple[str, ...]
    kinds: tuple[tuple[tuple[int, int, int, int], int], ...]
    durations: tuple[tuple[int, ...], ...]

    @cached_property
    def typical_days(self) -> tuple[float | None, ...]:
        """Median days of the finished stays per stage (once: the refits share it)."""
        return tuple(float(median(d)) if d else None for d in self.durations)


_Counted = tuple[tuple[tuple[int, int, int, int], int | None], ...]


def _count_stays(
    deal: KnownDeal, stages: tuple[str, ...], pos: dict[str, int], as_of: datetime
) -> _Counted:
    """The deal's stays as (kind key, days of a finished stay or None)."""
    k = BUCKETS
    out: list[tuple[tuple[int, int, int, int], int | None]] = []
    for stay in stays_of(deal, stages, as_of):
        s = pos[stay.stage]
        days = (stay.end - stay.start).days
        if stay.dest is not None:
            # A finished stay of d days is round(d / STEP_DAYS) steps (at
            # least one): the step model then takes as long as the history did.
            covered = max(1, steps_in(days))
            out.append(((s, covered, min(covered - 1, k - 1), pos[stay.dest]), days))
        else:
            out.append(((s, survived(days), -1, -1), None))
    return tuple(out)


@dataclass
class _Tally:
    """Stays counted so far: ``kinds`` and finished ``durations``, over ``deals``."""

    deals: list[KnownDeal]
    kinds: dict[tuple[int, int, int, int], int]
    durations: list[list[int]]

    def add(self, counted: _Counted) -> None:
        kinds, durations = self.kinds, self.durations
        for key, days in counted:
            kinds[key] = kinds.get(key, 0) + 1
            if days is not None:
                durations[key[0]].append(days)


def observe(history: KnownHistory, stages: tuple[str, ...]) -> Observations:
    """Turn the history's stays into counts, once (the bootstrap's refits reuse them).

    A settled decided deal's stays no longer depend on the cut: cuts of one
    :class:`HistoryIndex` (its ``memo``) count them once, as a running tally
    the later cuts extend (counts add up in any order, and a median does not
    depend on it: the same observations as counting every deal anew).
    """
    n = len(stages)
    pos = {s: i for i, s in enumerate(stages)}
    pos[WON], pos[LOST] = n, n + 1
    as_of = history.as_of
    memo, settled = history.memo, history.settled
    skip: set[int] = set()
    if memo is not None and settled:
        tally: _Tally | None = memo.get(("tally", stages))
        done = 0 if tally is None else len(tally.deals)
        if (
            tally is None
            or done > len(settled)
            or (done and tally.deals[-1] is not settled[done - 1])
        ):
            tally = memo[("tally", stages)] = _Tally([], {}, [[] for _ in range(n)])
            done = 0
        for deal in settled[done:]:
            tally.add(_count_stays(deal, stages, pos, as_of))
            tally.deals.append(deal)
        skip = {id(d) for d in settled}
        local = _Tally([], dict(tally.kinds), [list(d) for d in tally.durations])
    else:
        local = _Tally([], {}, [[] for _ in range(n)])
    for deal in history.deals:
        if id(deal) not in skip:
            local.add(_count_stays(deal, stages, pos, as_of))
    return Observations(
        stages=stages,
        kinds=tuple(sorted(local.kinds.items())),
        durations=tuple(tuple(d) for d in local.durations),
    )


def estimate(
    history: KnownHistory | Observations,
    stages: tuple[str, ...],
    prior: float = PRIOR_STEPS,
    resample: random.Random | None = None,
) -> StageModel:
    """Learn the hazards from every stay known in ``history``.

    With ``resample``, refit on a Bayesian-bootstrap resample of the stays
    (each stay weighted by an Exp(1) draw; a kind seen ``c`` times, by a
    Gamma(c) draw): the forecast's intervals carry the rates' uncertainty.
    """
    obs = history if isinstance(history, Observations) else observe(history, stages)
    n, k = len(stages), BUCKETS
    nd = n + 2
    diff = [[0.0] * (k + 1) for _ in range(n)]  # exposure of buckets 0..k-2 by difference
    tail = [0.0] * n  # exposure steps in the last bucket
    exits = [[[0.0] * nd for _ in range(k)] for _ in range(n)]
    for (s, covered, exit_bucket, dest), count in obs.kinds:
        w = float(count) if resample is None else resample.gammavariate(count, 1.0)
        if exit_bucket >= 0:
            exits[s][exit_bucket][dest] += w
        if covered <= 0:
            continue
        diff[s][0] += w
        diff[s][min(covered, k - 1)] -= w
        tail[s] += w * max(0, covered - (k - 1))
    exposure = []
    for s in range(n):
        run, row = 0.0, []
        for b in range(k - 1):
            run += diff[s][b]
            row.append(run)
        row.append(tail[s])
        exposure.append(row)

    total_exp = [sum(exposure[s]) for s in range(n)]
    stage_exits = [[sum(exits[s][b][d] for b in range(k)) for d in range(nd)] for s in range(n)]
    all_exp = sum(total_exp)
    # Pooled over all stages, by kind of move: next stage, won, lost (others too rare to pool).
    fwd = sum(stage_exits[s][s + 1] for s in range(n - 1))
    glob_won = sum(stage_exits[s][n] for s in range(n))
    glob_lost = sum(stage_exits[s][n + 1] for s in range(n))

    def pooled(s: int) -> list[float]:
        if total_exp[s] > 0:
            x = float(total_exp[s])
            return [stage_exits[s][d] / x for d in range(nd)]
        rates = [0.0] * nd
        if all_exp:
            if s + 1 < n:
                rates[s + 1] = fwd / all_exp
            rates[n] = glob_won / all_exp
            rates[n + 1] = glob_lost / all_exp
        return rates

    hazards = []
    for s in range(n):
        base = pooled(s)
        rows = []
        for b in range(k):
            x = exposure[s][b]
            if x + prior <= 0:
                rows.append(tuple(base))
                continue
            rows.append(tuple((exits[s][b][d] + prior * base[d]) / (x + prior) for d in range(nd)))
        hazards.append(tuple(rows))
    typical = obs.typical_days
    return StageModel(
        stages=stages,
        hazards=tuple(hazards),
        typical_days=typical,
        finished_stays=tuple(len(d) for d in obs.durations),
    )
