"""Replay history: forecast each period as of its first day, compare with what was won.

Each period's forecast sees only ``cut_history(..., period.start)`` (a
:class:`HistoryIndex` cut: the same history, sorted once for all periods); the
actual is the amount of deals won with ``closed_at`` inside the period. The
same run scores touchflow's expected value, the naive stage-weighted pipeline
(open deals with a close date in the period x their stage's book probability)
and the commit category (open commit deals with a close date in the period).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from touchflow.domain.deals import Deal, DealOutcome, StageChange
from touchflow.domain.forecasting._forecast import DEFAULT_DRAWS, DEFAULT_REPLICAS, forecast_known
from touchflow.domain.forecasting._history import CloseDateChange, ForecastPipeline, HistoryIndex
from touchflow.domain.forecasting._periods import Period, periods_starting_between, utc

METHODS = ("touchflow", "naive", "commit")


@dataclass(frozen=True)
class BacktestPeriod:
    period: Period
    actual: float
    expected: float
    p10: float
    p50: float
    p90: float
    naive: float
    commit: float

    def forecast_of(self, method: str) -> float:
        return {"touchflow": self.expected, "naive": self.naive, "commit": self.commit}[method]

    @property
    def covered(self) -> bool:
        return self.p10 <= self.actual <= self.p90


@dataclass(frozen=True)
class BacktestResult:
    periods: tuple[BacktestPeriod, ...]
    currency: str

    def mape(self, method: str) -> float | None:
        """Mean absolute percentage error over periods with something won, in percent."""
        errs = [
            abs(p.forecast_of(method) - p.actual) / p.actual for p in self.periods if p.actual > 0
        ]
        return 100.0 * sum(errs) / len(errs) if errs else None

    def bias(self, method: str) -> float | None:
        """Mean signed percentage error, in percent: below 0 the method forecasts too low."""
        errs = [(p.forecast_of(method) - p.actual) / p.actual for p in self.periods if p.actual > 0]
        return 100.0 * sum(errs) / len(errs) if errs else None

    @property
    def interval_coverage(self) -> float | None:
        """Share (0..1) of periods whose actual fell within touchflow's P10-P90."""
        if not self.periods:
            return None
        return sum(p.covered for p in self.periods) / len(self.periods)

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 2)

        coverage = self.interval_coverage
        return {
            "periods": [
                {
                    "period": p.period.label,
                    "start": p.period.start.isoformat(),
                    "end": p.period.last_day.isoformat(),
                    "actual": r(p.actual),
                    "touchflow": {
                        "expected": r(p.expected),
                        "p10": r(p.p10),
                        "p50": r(p.p50),
                        "p90": r(p.p90),
                    },
                    "naive": r(p.naive),
                    "commit": r(p.commit),
                }
                for p in self.periods
            ],
            "mape": {m: r(self.mape(m)) for m in METHODS},
            "bias": {m: r(self.bias(m)) for m in METHODS},
            "interval_coverage": None if coverage is None else round(coverage, 4),
        }


def backtest(
    deals: Sequence[Deal],
    changes: Sequence[StageChange],
    pipeline: ForecastPipeline,
    *,
    start: date,
    end: date,
    close_date_changes: Iterable[CloseDateChange] = (),
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    now: datetime | None = None,
    replicas: int = DEFAULT_REPLICAS,
) -> BacktestResult:
    """Every period of ``pipeline.period`` starting within ``[start, end]``.

    With ``now``, periods not over by then are left out: their actual is not known yet.
    """
    index = HistoryIndex(deals, changes, close_date_changes)  # sorted once, cut per period
    won = [
        (utc(d.closed_at), pipeline.convert(d.amount, d.currency))
        for d in deals
        if d.outcome is DealOutcome.WON and d.closed_at is not None
    ]
    rows: list[BacktestPeriod] = []
    for period in periods_starting_between(start, end, pipeline.period):
        if now is not None and period.end_at > utc(now):
            continue
        history = index.cut(period.start_at)
        # The seed depends on the period only: a period's result does not move
        # when the backtest's range does.
        f = forecast_known(
            history,
            pipeline,
            periods=1,
            draws=draws,
            seed=seed ^ zlib.crc32(period.label.encode()),
            replicas=replicas,
            explain=False,
        )
        one = f.periods[0]
        start_at, end_at = period.start_at, period.end_at
        actual = sum(amount for at, amount in won if start_at <= at < end_at)
        rows.append(
            BacktestPeriod(
                period=period,
                actual=actual,
                expected=one.expected,
                p10=one.p10,
                p50=one.p50,
                p90=one.p90,
                naive=one.won_to_date + one.weighted_pipeline,
                commit=one.commit,
            )
        )
    return BacktestResult(periods=tuple(rows), currency=pipeline.currency)
