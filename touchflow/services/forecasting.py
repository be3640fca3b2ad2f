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

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
from touchflow.errors import ConfigError, TouchflowError
from touchflow.store import forecasts as stored
from touchflow.store.activity import deals_version
from touchflow.store.deals import all_deals, close_date_history, deals_as_of, stage_history

__all__ = [
    "DEFAULT_DRAWS",
    "ForecastInput",
    "backtest_line",
    "compute_dashboard_forecast",
    "dashboard_forecast",
    "forecast_input",
    "forecast_key",
    "forecast_pipeline",
    "forecast_summary",
    "refresh_stored_forecast",
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


# -- the dashboard's forecast, stored and shared ------------------------------------------

_log = logging.getLogger(__name__)

#: Part of every stored result's key: change it when the method's numbers change,
#: so results computed by an older method are neither served as fresh nor as stale.
METHOD_VERSION = "2026-12-06"
DASHBOARD_PERIODS = 2  # this period and the next
BACKTEST_DRAWS = 500  # as bench/forecast.py's backtests; the forecast keeps the CLI's 2,000
BACKTEST_DAYS = 730  # the dashboard's backtest covers the periods of the last two years
TOP_DEALS = 25  # deals listed with the forecast on the page
CLAIM_STALE_AFTER = timedelta(minutes=15)  # a claim this old belongs to a process that died
#: How long a page view waits, by default, for a computation it started before answering
#: with the latest stored result (marked stale) or "computing" (settings: reports.forecast_wait_s).
WAIT_SECONDS = 3.0


def _owners_text(owners: frozenset[str] | None) -> str:
    if owners is None:
        return "all"
    return "owners:" + hashlib.sha256("\n".join(sorted(owners)).encode()).hexdigest()[:40]


def settings_key(pipe: ForecastPipeline) -> str:
    """A hash of everything besides the deals that changes the stored numbers."""
    spec = {
        "method": METHOD_VERSION,
        "stages": list(pipe.stages),
        "probabilities": {k: pipe.probabilities[k] for k in sorted(pipe.probabilities)},
        "categories": {k: pipe.categories[k].value for k in sorted(pipe.categories)},
        "period": pipe.period,
        "currency": pipe.currency,
        "rates": {k: pipe.rates[k] for k in sorted(pipe.rates)},
        "draws": DEFAULT_DRAWS,
        "backtest_draws": BACKTEST_DRAWS,
        "periods": DASHBOARD_PERIODS,
        "backtest_days": BACKTEST_DAYS,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:40]


def forecast_key(
    conn: Connection, pipe: ForecastPipeline, owners: frozenset[str] | None, now: datetime
) -> stored.ForecastKey:
    """The stored result's key: scope, settings, as-of day, deals' version."""
    version = "|".join(str(x) for x in deals_version(conn))
    return stored.ForecastKey(_owners_text(owners), settings_key(pipe), now.date(), version)


def compute_dashboard_forecast(
    conn: Connection, pipe: ForecastPipeline, owners: frozenset[str] | None, now: datetime
) -> dict[str, Any]:
    """The forecast of this period and the next, and the backtest of the periods before,
    over the deals of ``owners`` (None: everyone), as ``touchflow forecast`` computes them.

    Seconds to tens of seconds at 50,000 deals: a page view does not wait for it
    beyond ``reports.forecast_wait_s`` (:func:`dashboard_forecast`).
    """
    now_in = forecast_input(conn, now)
    everything = forecast_input(conn)
    mine = {d.deal_id for d in everything.deals if owners is None or d.owner_email in owners}

    def cut(data: ForecastInput) -> ForecastInput:
        if owners is None:
            return data
        return ForecastInput(
            [d for d in data.deals if d.deal_id in mine],
            [c for c in data.changes if c.deal_id in mine],
            [c for c in data.close_dates if c.deal_id in mine],
        )

    out: dict[str, Any] = {"forecast": None, "backtest": None, "error": None}
    try:
        data = cut(now_in)
        f = forecast(data.deals, data.changes, now, pipe, periods=DASHBOARD_PERIODS,
                     close_date_changes=data.close_dates)  # fmt: skip
        fj = f.to_json()
        top = sorted(fj["deals"], key=lambda d: -d["amount"] * d["win_probability"])
        fj["deals"] = top[:TOP_DEALS]
        out["forecast"] = fj
        hist = cut(everything)
        created = [d.created_at.date() for d in hist.deals]
        if created:
            start = max(min(created), (now - timedelta(days=BACKTEST_DAYS)).date())
            result = backtest(hist.deals, hist.changes, pipe, start=start, end=now.date(),
                              close_date_changes=hist.close_dates, draws=BACKTEST_DRAWS,
                              now=now)  # fmt: skip
            out["backtest"] = result.to_json()
    except TouchflowError as exc:  # a currency without a rate: say so on the page
        out["error"] = str(exc)
    return out


@dataclass
class _Running:
    """A computation this process is running: who waits for it, and its result."""

    done: threading.Event = field(default_factory=threading.Event)
    result: stored.StoredForecast | None = None
    waiters: int = 0  # page views that waited for it: only the first one does


_RUNNING: dict[stored.ForecastKey, _Running] = {}
_RUNNING_LOCK = threading.Lock()


def _wall() -> datetime:
    return datetime.now(UTC)


def _compute_and_store(
    engine: Engine,
    pipe: ForecastPipeline,
    owners: frozenset[str] | None,
    key: stored.ForecastKey,
    now: datetime,
    running: _Running,
) -> None:
    try:
        with engine.connect() as conn:
            result = compute_dashboard_forecast(conn, pipe, owners, now)
        computed_at = _wall()
        with engine.begin() as conn:
            stored.store_result(conn, key, now, computed_at, result)
        running.result = stored.StoredForecast(key, now, computed_at, result)
    except Exception:
        _log.exception("forecast for %s as of %s failed", key.scope, now.isoformat())
        try:
            with engine.begin() as conn:
                stored.release(conn, key)
        except Exception:  # the claim then ages out (CLAIM_STALE_AFTER)
            _log.exception("could not release the forecast claim")
    finally:
        with _RUNNING_LOCK:
            _RUNNING.pop(key, None)
        running.done.set()


def _start(
    engine: Engine,
    pipe: ForecastPipeline,
    owners: frozenset[str] | None,
    key: stored.ForecastKey,
    now: datetime,
    *,
    background: bool,
) -> _Running | None:
    """Claim ``key`` and compute it (in a thread with ``background``); None when another
    process holds the claim. At most one computation per key: this process's own
    runs by :data:`_RUNNING`, every process's by the claim row."""
    with _RUNNING_LOCK:
        running = _RUNNING.get(key)
        if running is not None:
            return running
        with engine.begin() as conn:
            if not stored.claim(conn, key, _wall(), CLAIM_STALE_AFTER):
                return None
        running = _RUNNING[key] = _Running()
    if background:
        threading.Thread(
            target=_compute_and_store,
            args=(engine, pipe, owners, key, now, running),
            name=f"forecast-{key.scope[:16]}",
            daemon=True,
        ).start()
    else:
        _compute_and_store(engine, pipe, owners, key, now, running)
    return running


def _status(
    state: str, found: stored.StoredForecast | None, key: stored.ForecastKey
) -> dict[str, Any]:
    reason = None
    if state == "stale" and found is not None:
        if found.key.as_of_day != key.as_of_day:
            reason = f"as of {found.key.as_of_day.isoformat()}; today's is being computed"
        else:
            reason = "deals changed since; the new forecast is being computed"
    return {
        "state": state,  # fresh | stale | computing
        "as_of": found.as_of.isoformat() if found else None,
        "computed_at": found.computed_at.isoformat() if found else None,
        "reason": reason,
    }


def dashboard_forecast(
    conn: Connection,
    pipeline: Pipeline,
    owners: frozenset[str] | None,
    now: datetime,
    *,
    wait: float | None = None,
) -> dict[str, Any]:
    """The dashboard's forecast and backtest for ``owners``' deals, as stored.

    The result for the current key (deals' version, scope, day, settings) when
    there is one (``forecast_status.state`` "fresh"). Otherwise the computation
    starts in the background, once per key across processes, and the page gets,
    after at most ``wait`` seconds (:data:`WAIT_SECONDS`), the new result, or the
    latest stored one marked "stale" with its as-of and computed times, or,
    when nothing is stored yet, "computing" (no forecast).
    """
    pipe = forecast_pipeline(pipeline)
    key = forecast_key(conn, pipe, owners, now)
    found = stored.fresh_result(conn, key)
    if found is not None:
        return {**found.result, "forecast_status": _status("fresh", found, key)}
    if conn.dialect.name == "sqlite":
        # SQLite (one small installation, one writer): a second connection would wait
        # on this request's transaction; compute here, on it, and store with it.
        result = compute_dashboard_forecast(conn, pipe, owners, now)
        at = _wall()
        stored.store_result(conn, key, now, at, result)
        return {
            **result,
            "forecast_status": _status("fresh", stored.StoredForecast(key, now, at, result), key),
        }
    running = _start(conn.engine, pipe, owners, key, now, background=True)
    waited = False
    if running is not None:
        with _RUNNING_LOCK:
            first = running.waiters == 0
            running.waiters += 1
        # Only the view that started it waits: the others get the stale one at once.
        waited = first and running.done.wait(WAIT_SECONDS if wait is None else wait)
    if waited and running is not None and running.result is not None:
        return {**running.result.result, "forecast_status": _status("fresh", running.result, key)}
    latest = stored.latest_result(conn, key.scope, key.settings_key)
    if latest is not None and latest.key == key:  # finished meanwhile (by another process)
        return {**latest.result, "forecast_status": _status("fresh", latest, key)}
    if latest is not None:
        return {**latest.result, "forecast_status": _status("stale", latest, key)}
    return {"forecast": None, "backtest": None, "error": None,
            "forecast_status": _status("computing", None, key)}  # fmt: skip


def refresh_stored_forecast(engine: Engine, pipeline: Pipeline, now: datetime) -> bool:
    """Compute and store the everyone-scope (admin) forecast as of ``now`` unless it is
    stored or being computed; True when this call computed it. The daily snapshot
    (the flow and ``touchflow snapshot``) calls it: the day's first page view finds it
    ready. A deal change during the day is computed on the next page view."""
    pipe = forecast_pipeline(pipeline)
    with engine.connect() as conn:
        key = forecast_key(conn, pipe, None, now)
        if stored.fresh_result(conn, key) is not None:
            return False
    running = _start(engine, pipe, None, key, now, background=False)
    return running is not None and running.result is not None
