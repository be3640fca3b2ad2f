"""``touchflow forecast``: what the pipeline will win per period, and its backtest.

Registered on the main ``touchflow`` app when :mod:`touchflow.entrypoints.cli` is
imported. The method is in docs/forecast.md; the data is what ``deals import``,
``deals sync`` and ``snapshot`` stored.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from touchflow.entrypoints.cli.app import (
    app,
    current_settings,
    engine_for,
    out,
    parse_now,
    pipeline_or_exit,
)

if TYPE_CHECKING:
    from touchflow.domain.forecasting import BacktestResult, Forecast


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {value!r}", param_hint=option) from None


def _m(x: float) -> str:
    return f"{x:,.0f}"


def _table(title: str, headers: list[str], rows: list[list[str]], bold: int) -> Table:
    """Numbers right-aligned and never cut to an ellipsis, however narrow the console
    (a pipe is 80 columns): each column is at least as wide as its widest cell."""
    table = Table(title=title)
    for i, head in enumerate(headers):
        widest = max((len(r[i]) for r in rows), default=len(head))
        widest = max(widest, *(len(word) for word in head.split()))
        table.add_column(
            head, justify="left" if i == 0 else "right", no_wrap=True, min_width=widest
        )
    for r in rows:
        table.add_row(*(f"[bold]{c}[/bold]" if i == bold else c for i, c in enumerate(r)))
    return table


def forecast_table(f: Forecast) -> Table:
    """Per period: won to date, expected with P10/P50/P90, and the CRM's own figures."""
    headers = ["period", "won", "expected", "P10", "P50", "P90",
               "weighted", "commit", "best case"]  # fmt: skip
    rows = [
        [p.period.label, _m(p.won_to_date), _m(p.expected), _m(p.p10), _m(p.p50), _m(p.p90),
         _m(p.weighted_pipeline), _m(p.commit), _m(p.best_case)]
        for p in f.periods
    ]  # fmt: skip
    return _table(f"Forecast as of {f.as_of:%Y-%m-%d %H:%M} UTC ({f.currency})", headers, rows, 2)


def print_deals(console: Console, f: Forecast, top: int) -> None:
    """Open deals by expected amount in the first period, each with its reasons."""
    rows = f.deals if top <= 0 else f.deals[:top]
    shown = f"{len(rows)} of {len(f.deals)}" if len(rows) < len(f.deals) else str(len(f.deals))
    console.print(
        f"[bold]Open deals ({shown}), by expected amount in {f.periods[0].period.label}[/bold]"
    )
    for d in rows:
        chances = ", ".join(
            f"{p.period.label} {q:.0%}" for p, q in zip(f.periods, d.probabilities, strict=True)
        )
        console.print(
            f"{d.deal_id}  {d.account_domain or '-'}  {d.owner_email or '-'}  {d.stage}  "
            f"{_m(d.amount)} {f.currency}: {chances}; ever {d.win_probability:.0%}",
            markup=False,
        )
        for reason in d.reasons:
            console.print(f"    {reason}", markup=False)


def backtest_table(result: BacktestResult) -> Table:
    headers = ["period", "actual", "touchflow", "P10", "P90", "P10-P90", "naive", "commit"]
    rows = [
        [p.period.label, _m(p.actual), _m(p.expected), _m(p.p10), _m(p.p90),
         "in" if p.covered else "out", _m(p.naive), _m(p.commit)]
        for p in result.periods
    ]  # fmt: skip
    title = f"Backtest: each period forecast as of its first day ({result.currency})"
    return _table(title, headers, rows, 2)


def print_backtest(console: Console, result: BacktestResult) -> None:
    """The per-period table, then MAPE and bias of each method and the interval coverage."""
    from touchflow.services.forecasting import backtest_line

    if result.periods:
        console.print(backtest_table(result))

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{x:+.1f}%"

        console.print(
            "bias: "
            + ", ".join(f"{m} {pct(result.bias(m))}" for m in ("touchflow", "naive", "commit")),
            markup=False,
        )
    console.print(backtest_line(result), markup=False)


@app.command("forecast")
def forecast_cmd(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", metavar="DATE", help="Forecast as known then (default: now)."),
    ] = None,
    periods: Annotated[
        int, typer.Option("--periods", min=1, max=12, help="Periods to forecast.")
    ] = 2,
    show_deals: Annotated[
        bool, typer.Option("--deals", help="Also each open deal's probability and why.")
    ] = False,
    top: Annotated[
        int, typer.Option("--top", min=0, help="Deals shown with --deals (0: all).")
    ] = 20,
    backtest: Annotated[
        bool, typer.Option("--backtest", help="Replay history period by period instead.")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option("--from", metavar="DATE", help="Backtest: first period starts on or after."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", metavar="DATE", help="Backtest: last period starts on or before."),
    ] = None,
    draws: Annotated[
        int, typer.Option("--draws", min=1, help="Monte Carlo draws (P10-P90).")
    ] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Act as if it were this time (default: now): the forecast's as-of without "
            "--as-of; the backtest skips periods not over by then.",
        ),
    ] = None,
) -> None:
    """What the open pipeline and the deals still to come will win per month or quarter
    (config/pipeline.yaml forecast.period), with P10-P90, beside the stage-weighted
    pipeline, commit and best case. With --backtest --from DATE --to DATE: each past period
    forecast as of its first day against what was won, and the MAPE of touchflow, the
    naive weighted pipeline and the commit call."""
    from touchflow.services.forecasting import run_backtest, run_forecast

    settings = current_settings()
    pipeline = pipeline_or_exit(settings)
    engine = engine_for(settings)
    if backtest:
        first, last = _day(start, "--from"), _day(end, "--to")
        if first is None or last is None:
            raise typer.BadParameter("--backtest needs --from DATE and --to DATE")
        if last < first:
            raise typer.BadParameter("--to is before --from", param_hint="--to")
        result = run_backtest(
            engine, pipeline, start=first, end=last, now=parse_now(now), draws=draws
        )
        if as_json:
            out.print_json(json.dumps(result.to_json()))
        else:
            print_backtest(out, result)
        return
    if start is not None or end is not None:
        raise typer.BadParameter("--from and --to go with --backtest")
    moment = parse_now(as_of) if as_of is not None else parse_now(now)
    f = run_forecast(engine, pipeline, moment, periods=periods, draws=draws)
    if as_json:
        out.print_json(json.dumps(f.to_json()))
        return
    out.print(forecast_table(f))
    if show_deals and f.deals:
        print_deals(out, f, top)
    elif not f.deals:
        out.print("no open deals")
    else:
        out.print(f"{len(f.deals)} open deals; --deals shows each one's probability and why")
