"""The forecast: per period what is won already, what open deals will add, what new deals will add.

Open deals: each deal's chance of being won in each period comes from the
stage model (its stage and time in stage at ``as_of``). New deals, not yet
created: the rate of deals created in one period and won ``L`` periods later,
measured over the last year known at ``as_of``, with amounts drawn from those
deals. Monte Carlo over both (a seeded ``random.Random``: same inputs, same
numbers) gives P10, P50 and P90.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from touchflow.domain.deals import Deal, DealOutcome, ForecastCategory, StageChange
from touchflow.domain.forecasting._history import (
    CloseDateChange,
    ForecastPipeline,
    KnownDeal,
    KnownHistory,
    cut_history,
)
from touchflow.domain.forecasting._model import (
    BUCKETS,
    STEP_DAYS,
    StageModel,
    estimate,
    observe,
    survived,
)
from touchflow.domain.forecasting._periods import Period, following, period_containing, periods_from

LOOKBACK_DAYS = 365  # how far back the rate of new deals is measured
DEFAULT_DRAWS = 2000
DEFAULT_REPLICAS = 10  # refits of the model on resampled deals, for the intervals
QUARTER_PRIOR = 10.0  # wins per half-month that shrink the calendar factors toward 1


@dataclass(frozen=True)
class DealForecast:
    """One open deal: its chance of closing won in each period, and why."""

    deal_id: str
    owner_email: str | None
    account_domain: str | None
    stage: str
    category: ForecastCategory
    amount: float  # reporting currency
    probabilities: tuple[float, ...]  # one per forecast period
    win_probability: float  # eventually, whatever the period
    days_in_stage: int
    typical_days_in_stage: float | None
    close_date: date | None
    days_to_close_date: int | None
    close_date_pushes: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PeriodForecast:
    period: Period
    won_to_date: float
    expected: float
    p10: float
    p50: float
    p90: float
    weighted_pipeline: float
    commit: float
    best_case: float
    from_open_deals: float
    from_new_deals: float


@dataclass(frozen=True)
class Forecast:
    as_of: datetime
    currency: str
    granularity: str
    periods: tuple[PeriodForecast, ...]
    deals: tuple[DealForecast, ...]
    draws: int

    def to_json(self) -> dict[str, Any]:
        labels = [p.period.label for p in self.periods]
        return {
            "as_of": self.as_of.isoformat(),
            "currency": self.currency,
            "period": self.granularity,
            "draws": self.draws,
            "periods": [
                {
                    "period": p.period.label,
                    "start": p.period.start.isoformat(),
                    "end": p.period.last_day.isoformat(),
                    "won_to_date": _money(p.won_to_date),
                    "expected": _money(p.expected),
                    "p10": _money(p.p10),
                    "p50": _money(p.p50),
                    "p90": _money(p.p90),
                    "weighted_pipeline": _money(p.weighted_pipeline),
                    "commit": _money(p.commit),
                    "best_case": _money(p.best_case),
                    "from_open_deals": _money(p.from_open_deals),
                    "from_new_deals": _money(p.from_new_deals),
                }
                for p in self.periods
            ],
            "deals": [
                {
                    "deal_id": d.deal_id,
                    "owner_email": d.owner_email,
                    "account_domain": d.account_domain,
                    "stage": d.stage,
                    "category": d.category.value,
                    "amount": _money(d.amount),
                    "probabilities": {
                        label: round(p, 4) for label, p in zip(labels, d.probabilities, strict=True)
                    },
                    "win_probability": round(d.win_probability, 4),
                    "days_in_stage": d.days_in_stage,
                    "typical_days_in_stage": d.typical_days_in_stage,
                    "close_date": d.close_date.isoformat() if d.close_date else None,
                    "days_to_close_date": d.days_to_close_date,
                    "close_date_pushes": d.close_date_pushes,
                    "reasons": list(d.reasons),
                }
                for d in self.deals
            ],
        }


def _money(x: float) -> float:
    return round(x, 2)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    if not sorted_values:
        return 0.0
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def forecast(
    deals: Iterable[Deal],
    changes: Iterable[StageChange],
    as_of: datetime,
    pipeline: ForecastPipeline,
    *,
    periods: int = 2,
    close_date_changes: Iterable[CloseDateChange] = (),
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> Forecast:
    """Forecast ``periods`` periods from the one containing ``as_of``, from history known then."""
    history = cut_history(deals, changes, as_of, close_date_changes=close_date_changes)
    return forecast_known(history, pipeline, periods=periods, draws=draws, seed=seed)


@dataclass(frozen=True)
class _NewDeals:
    expected_counts: tuple[float, ...]
    amounts: tuple[float, ...]
    evidence: int = 0  # deals the rates were counted from


def forecast_known(
    history: KnownHistory,
    pipeline: ForecastPipeline,
    *,
    periods: int = 2,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    replicas: int = DEFAULT_REPLICAS,
    explain: bool = True,
) -> Forecast:
    """The forecast from a history already cut at its ``as_of``.

    The expected values and each deal's probabilities come from the model
    fitted on the whole history; the draws are spread over ``replicas`` refits
    on Bayesian-bootstrap resamples of the deals, so P10-P90 carry the
    uncertainty of the learned rates as well as the luck of each deal.
    With ``explain=False`` (the backtest) the deals carry no reasons: the same
    numbers, without the text nobody reads.
    """
    if periods < 1:
        raise ValueError("periods must be at least 1")
    if draws < 1:
        raise ValueError("draws must be at least 1")
    as_of = history.as_of
    kind = pipeline.period
    plist = periods_from(as_of.date(), kind, periods)
    obs = observe(history, pipeline.stages)
    model = estimate(obs, pipeline.stages)
    steps = max(1, math.ceil((plist[-1].end_at - as_of).total_seconds() / (STEP_DAYS * 86400)))
    eventual_by_state = model.eventual_win()
    step_period: list[int] = []
    step_factor: list[float] = []
    factors = _quarter_calendar_factors(history)
    for t in range(steps):
        mid = as_of + timedelta(days=STEP_DAYS * (t + 0.5))
        step_period.append(next((i for i, p in enumerate(plist) if p.contains(mid)), -1))
        step_factor.append(factors[_half_month_of_quarter(mid)])
    by_state = model.period_probabilities(step_period, step_factor, periods)

    won_to_date = [0.0] * periods
    for d in history.deals:
        if d.outcome is DealOutcome.WON and d.closed_at is not None:
            for i, p in enumerate(plist):
                if p.contains(d.closed_at):
                    won_to_date[i] += pipeline.convert(d.amount, d.currency)

    rates = _owner_rates(history) if explain else {}
    team = _rate_text(*rates.get(None, (0, 0)))
    deal_rows: list[DealForecast] = []
    states: list[tuple[int, int]] = []
    weighted = [0.0] * periods
    commit = [0.0] * periods
    best = [0.0] * periods
    for d in history.open_deals():
        amount = pipeline.convert(d.amount, d.currency)
        row = _deal_forecast(
            d, amount, model, eventual_by_state, by_state, pipeline, as_of, rates, team, explain
        )
        deal_rows.append(row)
        states.append(_state(d, model, as_of))
        ci = _close_period(d.close_date, plist)
        if ci is not None:
            weighted[ci] += amount * pipeline.probability(d.stage)
            if row.category is ForecastCategory.COMMIT:
                commit[ci] += amount
            if row.category in (ForecastCategory.COMMIT, ForecastCategory.BEST_CASE):
                best[ci] += amount

    new = _new_deals(history, pipeline, plist)
    rng = random.Random(seed)
    totals = [[0.0] * periods for _ in range(draws)]
    replicas = max(1, min(replicas, draws))
    for r in range(replicas):
        if replicas == 1:
            probs_by_state, new_factor = by_state, 1.0
        else:
            refit = estimate(obs, pipeline.stages, resample=rng)
            probs_by_state = refit.period_probabilities(step_period, step_factor, periods)
            k = new.evidence + 0.5
            new_factor = rng.gammavariate(k, 1.0) / k
        share = totals[r::replicas]
        prepared: dict[tuple[int, int], _Odds | None] = {}
        for row, state in zip(deal_rows, states, strict=True):
            if state not in prepared:
                prepared[state] = _odds(probs_by_state[state[0]][state[1]])
            odds = prepared[state]
            if odds is not None and row.amount != 0:
                _simulate_odds(odds, row.amount, share, rng)
        for i, lam in enumerate(new.expected_counts):
            if lam <= 0 or not new.amounts:
                continue
            _simulate_new(lam * new_factor, new.amounts, i, share, rng)

    mean_new = sum(new.amounts) / len(new.amounts) if new.amounts else 0.0
    out: list[PeriodForecast] = []
    for i, p in enumerate(plist):
        column = sorted(won_to_date[i] + draw[i] for draw in totals)
        from_open = sum(r.probabilities[i] * r.amount for r in deal_rows)
        from_new = new.expected_counts[i] * mean_new
        out.append(
            PeriodForecast(
                period=p,
                won_to_date=won_to_date[i],
                expected=won_to_date[i] + from_open + from_new,
                p10=quantile(column, 0.1),
                p50=quantile(column, 0.5),
                p90=quantile(column, 0.9),
                weighted_pipeline=weighted[i],
                commit=won_to_date[i] + commit[i],
                best_case=won_to_date[i] + best[i],
                from_open_deals=from_open,
                from_new_deals=from_new,
            )
        )
    deal_rows.sort(key=lambda r: (-r.probabilities[0] * r.amount, r.deal_id))
    return Forecast(
        as_of=as_of,
        currency=pipeline.currency,
        granularity=kind,
        periods=tuple(out),
        deals=tuple(deal_rows),
        draws=draws,
    )


def _state(d: KnownDeal, model: StageModel, as_of: datetime) -> tuple[int, int]:
    """(stage index, step bucket) of an open deal; a stage the pipeline lacks reads as the first."""
    s = model.index(d.stage) if d.stage in model.stages else 0
    days = max(0, (as_of - d.stage_entered_at).days)
    return s, min(survived(days), BUCKETS - 1)


def _close_period(close_date: date | None, plist: list[Period]) -> int | None:
    """Where a CRM puts the deal: the period of its close date; one already passed, in the first."""
    if close_date is None:
        return None
    if close_date < plist[0].start:
        return 0
    for i, p in enumerate(plist):
        if p.start <= close_date < p.end:
            return i
    return None


def _deal_forecast(
    d: KnownDeal,
    amount: float,
    model: StageModel,
    eventual_by_state: list[list[float]],
    by_state: list[list[list[float]]],
    pipeline: ForecastPipeline,
    as_of: datetime,
    owner_rates: dict[str | None, tuple[int, int]],
    team: str,
    explain: bool = True,
) -> DealForecast:
    reasons: list[str] = []
    days = max(0, (as_of - d.stage_entered_at).days)
    if d.stage in model.stages:
        s = model.index(d.stage)
        typical = model.typical_days[s]
    else:
        s, typical = 0, None
        reasons.append(
            f"stage {d.stage!r} is not an open stage of the pipeline: read as {model.stages[0]}"
        )
    b = _state(d, model, as_of)[1]
    probs = list(by_state[s][b])
    eventual = eventual_by_state[s][b]
    category = pipeline.category(d.stage)

    def result(to_close: int | None, why: tuple[str, ...]) -> DealForecast:
        return DealForecast(
            deal_id=d.deal_id,
            owner_email=d.owner_email,
            account_domain=d.account_domain,
            stage=d.stage,
            category=category,
            amount=amount,
            probabilities=tuple(probs),
            win_probability=eventual,
            days_in_stage=days,
            typical_days_in_stage=typical,
            close_date=d.close_date,
            days_to_close_date=to_close,
            close_date_pushes=d.close_date_pushes,
            reasons=why,
        )

    if not explain:  # a backtest's forecasts: no reasons, no days to the close date
        return result(None, ())
    reasons.insert(
        0,
        f"{d.stage} ({category.value}): {eventual:.0%} chance of being won from here "
        f"(the stage's book probability is {pipeline.probability(d.stage):.0%})",
    )
    if typical is not None:
        ratio = days / typical if typical > 0 else float("inf")
        if days > typical * 2 and days >= 14:
            verdict = "stalled"
        elif days > typical:
            verdict = "slower than typical"
        else:
            verdict = "on pace"
        reasons.append(
            f"{days} day{'s' * (days != 1)} in {d.stage}, typical {typical:.0f} "
            f"(median of {model.finished_stays[s]} past stays): {verdict}"
            + (f", {ratio:.1f}x" if verdict != "on pace" else "")
        )
    else:
        reasons.append(
            f"{days} day{'s' * (days != 1)} in {d.stage}; no finished stay in it yet to compare"
        )
    if d.close_date_pushes:
        reasons.append(
            f"close date pushed {d.close_date_pushes} time{'s' * (d.close_date_pushes > 1)}"
        )
    to_close: int | None = None
    if d.close_date is not None:
        to_close = (d.close_date - as_of.date()).days
        if to_close < 0:
            reasons.append(f"close date {d.close_date.isoformat()} passed {-to_close} days ago")
        else:
            reasons.append(f"close date {d.close_date.isoformat()}, in {to_close} days")
    if d.owner_email and d.owner_email in owner_rates:
        reasons.append(
            f"owner {d.owner_email} won {_rate_text(*owner_rates[d.owner_email])} of closed deals "
            f"(team {team})"
        )
    return result(to_close, tuple(reasons))


def _half_month_of_quarter(moment: datetime) -> int:
    """0..5: the first or second half of the first, second or third month of the quarter."""
    return 2 * ((moment.month - 1) % 3) + (moment.day > 15)


def _quarter_calendar_factors(history: KnownHistory) -> list[float]:
    """How much faster deals close in each half-month of a quarter than on average.

    From the wins known at the cut (the quarter-end push shows here), per day,
    shrunk toward 1 by ``QUARTER_PRIOR`` wins per half-month; weighted by
    their days, the six average to 1.
    """
    counts = [0] * 6
    for d in history.deals:
        if d.outcome is DealOutcome.WON and d.closed_at is not None:
            counts[_half_month_of_quarter(d.closed_at)] += 1
    total = sum(counts)
    days = [15.0, 15.4] * 3  # a half-month's average length (second halves: 15.4 days)
    share = [x / sum(days) for x in days]
    raw = [
        (c + QUARTER_PRIOR) / (total * w + QUARTER_PRIOR)
        for c, w in zip(counts, share, strict=True)
    ]
    mean = sum(r * w for r, w in zip(raw, share, strict=True))
    return [r / mean for r in raw]


def _owner_rates(history: KnownHistory) -> dict[str | None, tuple[int, int]]:
    """(won, closed) per owner, and for the team under None."""
    out: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for d in history.deals:
        if d.outcome is None:
            continue
        for key in (d.owner_email, None):
            out[key][0] += d.outcome is DealOutcome.WON
            out[key][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def _rate_text(won: int, closed: int) -> str:
    return f"{won / closed:.0%} ({won}/{closed})" if closed else "n/a (none closed)"


def _new_deals(history: KnownHistory, pipeline: ForecastPipeline, plist: list[Period]) -> _NewDeals:
    """Expected count per forecast period of deals created after ``as_of`` and won in it."""
    as_of = history.as_of
    kind = pipeline.period
    if not history.deals:
        return _NewDeals(tuple(0.0 for _ in plist), ())
    first_day = min(d.created_at for d in history.deals).date()
    # Complete periods known at as_of, the oldest one starting after the data did.
    done: list[Period] = []
    p = period_containing(first_day, kind)
    if p.start < first_day:
        p = following(p, kind)
    while p.end_at <= as_of:
        done.append(p)
        p = following(p, kind)
    index = {q.label: i for i, q in enumerate(done)}
    won: dict[tuple[int, int], list[float]] = defaultdict(list)
    for d in history.deals:
        if d.outcome is not DealOutcome.WON or d.closed_at is None:
            continue
        c = index.get(period_containing(d.created_at.date(), kind).label)
        w = index.get(period_containing(d.closed_at.date(), kind).label)
        if c is not None and w is not None and w >= c:
            won[(c, w - c)].append(pipeline.convert(d.amount, d.currency))
    window = [i for i, q in enumerate(done) if (as_of - q.start_at).days <= LOOKBACK_DAYS + 31]
    rates: list[float] = []
    amounts: list[float] = []
    for lag in range(len(plist)):
        starts = [c for c in window if c + lag < len(done)]
        if not starts:
            # Not enough history for this lag: the longest lag measured stands in.
            rates.append(rates[-1] if rates else 0.0)
            continue
        counts = [len(won.get((c, lag), ())) for c in starts]
        rates.append(sum(counts) / len(starts))
        for c in starts:
            amounts.extend(won.get((c, lag), ()))
    # The current period has only its remainder left to create deals in (and, lag 0, win them).
    first = plist[0]
    left = (first.end_at - as_of).total_seconds() / (first.end_at - first.start_at).total_seconds()
    counts_out = []
    for i in range(len(plist)):
        total = 0.0
        for j in range(i + 1):
            r = rates[i - j]
            if j == 0:
                r *= left * left if i == 0 else left
            total += r
        counts_out.append(total)
    return _NewDeals(tuple(counts_out), tuple(amounts), len(amounts))


_Odds = tuple[float, float, list[float], int]  # total, log(1 - total), cumulative, last period


def _odds(probs: Sequence[float]) -> _Odds | None:
    """What a deal's draws need of its per-period probabilities (shared by deals in one state);
    None when it is never won."""
    total = sum(probs)
    if total <= 1e-9:
        return None
    cum: list[float] = []
    acc = 0.0
    for p in probs:
        acc += p
        cum.append(acc)
    log_miss = 0.0 if total >= 1.0 else math.log1p(-total)  # 0.0: won in every draw
    return total, log_miss, cum, len(probs) - 1


def _simulate_odds(
    odds: _Odds, amount: float, totals: list[list[float]], rng: random.Random
) -> None:
    """Walks only the winning draws (geometric gaps), so a deal costs what it wins."""
    total, log_miss, cum, last = odds
    draws = len(totals)
    rand = rng.random
    log = math.log
    i = 0 if not log_miss else int(log(1.0 - rand()) / log_miss)
    while i < draws:
        k = 0
        if last:
            u = rand() * total
            while k < last and u >= cum[k]:
                k += 1
        totals[i][k] += amount
        i += 1 if not log_miss else 1 + int(log(1.0 - rand()) / log_miss)


def _simulate_new(
    lam: float, amounts: Sequence[float], i: int, totals: list[list[float]], rng: random.Random
) -> None:
    """Per draw, a Poisson(``lam``) count of new deals won in period ``i``, each amount drawn
    from ``amounts``.

    The count sums exponential gaps (``rng.expovariate``), the amount is
    ``rng.choice``, both written out here as CPython's ``random`` computes
    them (the same draws from the same seed): at 50,000 deals they are
    millions of calls.
    """
    rand, getrandbits, log = rng.random, rng.getrandbits, math.log
    m = len(amounts)
    bits = m.bit_length()
    for draw in totals:
        n, t = 0, -log(1.0 - rand()) / lam
        while t < 1.0:
            n += 1
            t += -log(1.0 - rand()) / lam
        if not n:
            continue
        acc = draw[i]
        for _ in range(n):
            r = getrandbits(bits)
            while r >= m:
                r = getrandbits(bits)
            acc += amounts[r]
        draw[i] = acc
