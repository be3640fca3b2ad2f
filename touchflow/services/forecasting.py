"""The forecast and its backtest over the deals in the store (``touchflow forecast``).

:func:`forecast_pipeline` turns ``config/pipeline.yaml`` into the pure
forecast's :class:`~touchflow.domain.forecasting.ForecastPipeline` (its open
stages in order, their book probabilities and forecast categories, the
period, the reporting currency and the rates). :func:`run_forecast` reads the
deals as they were known at ``as_of`` (:func:`~touchflow.store.deals.deals_as_of`:
nothing created, moved or closed later), their close-date history up to then
(recorded changes and the pipeline snapshots), and forecasts.
:func:`run_backtest` reads the whole history once and hands it to the pure
backtest, which cuts it at the first day of each period itself.

Deal ids are those of the store; when deals come from more than one source
(``csv`` and a CRM) they read ``source:deal_id`` so two sources' ids never mix.
See docs/forecast.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import Connection, Engine

from touchflow.domain.deals import Deal, StageChange
from touchflow.domain.forecasting import (
    DEFAULT_DRAWS,
    DEFAULT_REPLICAS,
    BacktestResult,
    CloseDateChange,
    Forecast,
    ForecastPipeline,
    backtest,
    forecast,
)
from touchflow.domain.pipeline import Pipeline
from touchflow.errors import ConfigError
from touchflow.store.deals import all_deals, close_date_history, deals_as_of, stage_history

__all__ = [
    "DEFAULT_DRAWS",
    "ForecastInput",
    "backtest_line",
    "forecast_input",
    "forecast_pipeline",
    "forecast_summary",
    "run_backtest",
    "run_forecast",
]


def forecast_pipeline(pipeline: Pipeline) -> ForecastPipeline:
    """config/pipeline.yaml as the forecast reads it: the OPEN stages (all but won and lost)."""
    stages = tuple(pipeline.open_stages)
    return ForecastPipeline(
        stages=stages,
        probabilities={s: pipeline.stage(s).probability for s in stages},
        categories={s: pipeline.stage(s).category for s in stages},
        period=pipeline.forecast.period,
        currency=pipeline.forecast.reporting_currency,
        rates=dict(pipeline.forecast.rates),
    )


@dataclass(frozen=True)
class ForecastInput:
    """What the pure forecast reads: deals, their stage and close-date changes."""

    deals: list[Deal]
    changes: list[StageChange]
    close_dates: list[CloseDateChange]


def _check_currencies(deals: Iterable[Deal], pipe: ForecastPipeline) -> None:
    missing = sorted({d.currency for d in deals} - {pipe.currency, *pipe.rates})
    if missing:
        raise ConfigError(
            f"deals in {', '.join(missing)} but config/pipeline.yaml forecast.rates has no "
            f"rate to {pipe.currency} for {'them' if len(missing) > 1 else 'it'}"
        )


def _keyed(
    deals: Sequence[Deal],
    changes: dict[tuple[str, str], list[StageChange]],
    dates: dict[tuple[str, str], list[CloseDateChange]],
) -> ForecastInput:
    """The pure forecast keys deals on their id alone: ``source:id`` when sources mix."""
    several = len({d.source for d in deals}) > 1

    def key(source: str, deal_id: str) -> str:
        return f"{source}:{deal_id}" if several else deal_id

    out_deals = [replace(d, deal_id=key(d.source, d.deal_id)) if several else d for d in deals]
    out_changes = [
        replace(c, deal_id=key(*k)) if several else c for k, cs in changes.items() for c in cs
    ]
    out_dates = [
        replace(c, deal_id=key(*k)) if several else c for k, cs in dates.items() for c in cs
    ]
    return ForecastInput(out_deals, out_changes, out_dates)


def forecast_input(conn: Connection, as_of: datetime | None = None) -> ForecastInput:
    """Every deal with its history; with ``as_of``, only what was known then."""
    if as_of is None:
        deals = all_deals(conn)
        return _keyed(deals, stage_history(conn), close_date_history(conn))
    known = deals_as_of(conn, as_of)
    return _keyed(
        [h.deal for h in known],
        {(h.deal.source, h.deal.deal_id): list(h.stages) for h in known},
        close_date_history(conn, until=as_of),
    )


def run_forecast(
    engine: Engine,
    pipeline: Pipeline,
    as_of: datetime,
    *,
    periods: int = 2,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> Forecast:
    """The forecast of ``periods`` periods from the one containing ``as_of``."""
    pipe = forecast_pipeline(pipeline)
    with engine.connect() as conn:
        data = forecast_input(conn, as_of)
    _check_currencies(data.deals, pipe)
    return forecast(
        data.deals,
        data.changes,
        as_of,
        pipe,
        periods=periods,
        close_date_changes=data.close_dates,
        draws=draws,
        seed=seed,
    )


def run_backtest(
    engine: Engine,
    pipeline: Pipeline,
    *,
    start: date,
    end: date,
    now: datetime,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    replicas: int = DEFAULT_REPLICAS,
) -> BacktestResult:
    """Every period starting within ``[start, end]`` and over by ``now``, each forecast
    as of its first day and compared with what was won in it."""
    pipe = forecast_pipeline(pipeline)
    with engine.connect() as conn:
        data = forecast_input(conn)
    _check_currencies(data.deals, pipe)
    return backtest(
        data.deals,
        data.changes,
        pipe,
        start=start,
        end=end,
        close_date_changes=data.close_dates,
        draws=draws,
        seed=seed,
        now=now,
        replicas=replicas,
    )


def _money(x: float) -> str:
    return f"{x:,.0f}"


def forecast_summary(f: Forecast) -> list[str]:
    """One line per period, for a terminal or a log."""
    return [
        f"{p.period.label}: won to date {_money(p.won_to_date)}, expected {_money(p.expected)} "
        f"(P10 {_money(p.p10)}, P50 {_money(p.p50)}, P90 {_money(p.p90)}), weighted pipeline "
        f"{_money(p.weighted_pipeline)}, commit {_money(p.commit)}, best case "
        f"{_money(p.best_case)} {f.currency}"
        for p in f.periods
    ]


def backtest_line(result: BacktestResult) -> str:
    """touchflow's MAPE beside the naive method's and commit's, and the interval coverage."""
    if not result.periods:
        return "backtest: no complete period in the range"

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1f}%"

    covered = sum(p.covered for p in result.periods)
    n = len(result.periods)
    return (
        f"backtest over {n} period{'s' * (n != 1)} ({result.periods[0].period.label} to "
        f"{result.periods[-1].period.label}): MAPE touchflow {pct(result.mape('touchflow'))}, "
        f"naive {pct(result.mape('naive'))}, commit {pct(result.mape('commit'))}; "
        f"P10-P90 held the actual in {covered} of {n} ({covered / n:.0%})"
    )
