"""Pipeline forecast learned from the stage history, and its backtest.

Pure: deals, stage changes and the moment ``as_of`` come in as arguments.
``cut_history`` makes the history as known at ``as_of``; ``estimate`` learns
a semi-Markov model of the stages from it; ``forecast`` turns open deals and
the rate of new deals into per-period expected values and P10/P50/P90;
``backtest`` replays it period by period. See docs/forecast.md.
"""

from touchflow.domain.forecasting._backtest import BacktestPeriod, BacktestResult, backtest
from touchflow.domain.forecasting._forecast import (
    DEFAULT_DRAWS,
    DEFAULT_REPLICAS,
    DealForecast,
    Forecast,
    PeriodForecast,
    forecast,
    forecast_known,
    quantile,
)
from touchflow.domain.forecasting._history import (
    CloseDateChange,
    ForecastPipeline,
    HistoryIndex,
    KnownDeal,
    KnownHistory,
    cut_history,
)
from touchflow.domain.forecasting._model import (
    BUCKETS,
    STEP_DAYS,
    StageModel,
    Stay,
    estimate,
    stays_of,
)
from touchflow.domain.forecasting._periods import (
    Granularity,
    Period,
    period_containing,
    periods_from,
    periods_starting_between,
)

__all__ = [
    "BUCKETS",
    "DEFAULT_DRAWS",
    "DEFAULT_REPLICAS",
    "STEP_DAYS",
    "BacktestPeriod",
    "BacktestResult",
    "CloseDateChange",
    "DealForecast",
    "Forecast",
    "ForecastPipeline",
    "Granularity",
    "HistoryIndex",
    "KnownDeal",
    "KnownHistory",
    "Period",
    "PeriodForecast",
    "StageModel",
    "Stay",
    "backtest",
    "cut_history",
    "estimate",
    "forecast",
    "forecast_known",
    "period_containing",
    "periods_from",
    "periods_starting_between",
    "quantile",
    "stays_of",
]
