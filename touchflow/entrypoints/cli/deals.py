"""CLI commands for deals: ``deals import``, ``deals sync``, ``deals committee``, ``snapshot``.

Registered on the main ``touchflow`` app when :mod:`touchflow.entrypoints.cli` is
imported. Stages, forecast categories and committee roles come from
``config/pipeline.yaml``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from touchflow.entrypoints.cli.app import (
    app,
    current_settings,
    engine_for,
    err,
    fail,
    out,
    parse_now,
    pipeline_or_exit,
)

deals_app = typer.Typer(
    help="Deals (opportunities): import, sync from the CRM, buying-committee coverage.",
    no_args_is_help=True,
)
app.add_typer(deals_app, name="deals")


@deals_app.command("import")
def import_deals_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="DEALS_CSV",
            help="deal_id,account_domain,owner_email,amount,currency,created_at,"
            "close_date,stage,closed_at,outcome",
        ),
    ],
    history: Annotated[
        Path | None,
        typer.Option(
            "--history", exists=True, dir_okay=False, help="Stage history: deal_id,stage,entered_at"
        ),
    ] = None,
    close_dates: Annotated[
        Path | None,
        typer.Option(
            "--close-dates",
            exists=True,
            dir_okay=False,
            help="Close-date history: deal_id,close_date,changed_at (keeps the forecast "
            "backtest's close-date methods honest)",
        ),
    ] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Load deals (and their stage and close-date history) from CSV; bad rows go to
    FILE.rejects.csv.

    Stages must be those of config/pipeline.yaml. Re-importing the same files changes
    nothing. Exit code 1 when a row was rejected (the good rows are loaded).
    """
    from touchflow.errors import ImportFileError
    from touchflow.services.deals import import_deals

    settings = current_settings()
    pipeline = pipeline_or_exit(settings)
    try:
        summary = import_deals(
            engine_for(settings),
            file,
            pipeline,
            parse_now(now),
            history_path=history,
            close_dates_path=close_dates,
        )
    except ImportFileError as exc:
        raise fail(str(exc)) from None
    for row in summary.rejected[:50]:
        err.print(str(row), markup=False, soft_wrap=True)
    if len(summary.rejected) > 50:
        err.print(f"... and {len(summary.rejected) - 50} more")
    out.print(str(summary), markup=False)
    for path in summary.rejects_paths:
        err.print(f"rejected rows written to {path}", markup=False)
    if summary.rejected:
        raise typer.Exit(1)


@deals_app.command("committee")
def committee_cmd(
    account: Annotated[str | None, typer.Option("--account", help="One account's domain.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Buying-committee coverage of every open deal: roles covered, single-threaded deals,
    days since the economic buyer was last touched."""
    from touchflow.domain.normalize import domain_key
    from touchflow.services.committee import committee_report

    settings = current_settings()
    pipeline = pipeline_or_exit(settings)
    at = parse_now(now)
    with engine_for(settings).connect() as conn:
        report = committee_report(
            conn, pipeline, account_domain=domain_key(account) if account else None
        )
    if as_json:
        out.print_json(json.dumps({"deals": [d.as_json(at) for d in report]}))
        return
    if not report:
        out.print("no open deals" + (f" at {account}" if account else ""))
        return
    table = Table(title="Buying committees (open deals)")
    for col in ("account", "deal", "stage", "coverage", "people", "missing", "EB touched"):
        table.add_column(col)
    for d in report:
        c = d.coverage
        days = c.days_since_economic_buyer_touch(at)
        table.add_row(
            d.deal.account_domain or "-",
            d.deal.name or d.deal.deal_id,
            d.deal.stage,
            f"{c.score:.0%}",
            f"{c.people}" + (" single-threaded" if c.single_threaded else ""),
            ", ".join(r.value for r in c.missing) or "-",
            "never" if days is None else f"{days} d ago",
        )
    out.print(table)


@app.command()
def snapshot(
    day: Annotated[
        str | None, typer.Option("--date", help="The snapshot's date (default: today, UTC).")
    ] = None,
) -> None:
    """Record every open deal as it stands today; rerunning a date replaces that day."""
    from touchflow.services.deals import take_snapshot

    settings = current_settings()
    if day is None:
        when = parse_now(None).date()
    else:
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise typer.BadParameter(
                f"not a date (YYYY-MM-DD): {day!r}", param_hint="--date"
            ) from None
    engine = engine_for(settings)
    count = take_snapshot(engine, when)
    out.print(f"snapshot {when}: {count} open deal(s)")
    if (settings.config_dir / "pipeline.yaml").exists():
        # The dashboard's forecast (everyone's deals) for today, ready before anyone looks.
        from touchflow.services.forecasting import refresh_stored_forecast

        if refresh_stored_forecast(engine, pipeline_or_exit(settings), parse_now(None)):
            out.print("forecast: computed and stored for the dashboard")


@deals_app.command("sync")
def sync_cmd(
    since: Annotated[
        str | None,
        typer.Option("--since", help="First sync only: read deals changed after this time."),
    ] = None,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Pull deals changed in the CRM since the last sync: stages (mapped by
    config/pipeline.yaml's sources), stage history, contact roles."""
    from contextlib import closing

    from touchflow.bootstrap import deal_source
    from touchflow.errors import ConfigError, ConnectorError
    from touchflow.services.deals import sync_deals

    settings = current_settings()
    pipeline = pipeline_or_exit(settings)
    try:
        source = deal_source(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    first = parse_now(since) if since else None
    try:
        with closing(source):  # type: ignore[type-var]
            report = sync_deals(
                engine_for(settings), source, pipeline, parse_now(now), first_since=first
            )
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except ConnectorError as exc:
        raise fail(f"deal pull failed: {exc}") from None
    out.print(f"{source.name}: {report}", markup=False)
