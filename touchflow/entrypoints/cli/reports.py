"""``touchflow report NAME``: the reports the dashboard shows, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace
from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from touchflow.entrypoints.cli.app import app, current_settings, engine_for, err, out, parse_now


def _day(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{flag} takes a date (YYYY-MM-DD), not {value!r}") from None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


@app.command()
def report(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME",
            help="cadences, funnel, workload, speed_to_lead, deliverability or pipeline.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DATE",
            help="First day (UTC), YYYY-MM-DD (pipeline: the quota period holding it).",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", metavar="DATE", help="Last day (UTC), included.")
    ] = None,
    cadence: Annotated[str | None, typer.Option("--cadence", help="Only this cadence.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner (email).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO8601", help="Today for workload and SLA (default: now)."),
    ] = None,
    worst_domains: Annotated[
        int | None,
        typer.Option(
            "--worst-domains",
            metavar="N",
            min=1,
            help="deliverability: per mailbox only its N recipient domains with the most bounces"
            " and spam complaints, the rest one (other) row (the dashboard's view).",
        ),
    ] = None,
) -> None:
    """Metrics from one source of truth: the rollups, brought up to date first.

    Rates come with 95% Wilson intervals; variants of a step with the
    probability that each is best (Bayesian beta-binomial on replies, or
    meetings: TOUCHFLOW_REPORTS__AB_METRIC) and "not enough data" until every
    variant has TOUCHFLOW_REPORTS__AB_MIN_SENDS sends and the leader
    TOUCHFLOW_REPORTS__AB_THRESHOLD. Opens are shown, never used to decide.
    """
    from touchflow.bootstrap import report_context
    from touchflow.services.reporting import (
        REPORTS,
        ReportQuery,
        UnknownReport,
        run_report,
    )

    if name is None or name not in REPORTS:
        if name is None:
            err.print(f"error: name a report: {', '.join(REPORTS)}", markup=False)
        else:
            err.print(f"error: {UnknownReport(name, _near(name, list(REPORTS)))}", markup=False)
        raise typer.Exit(2)
    if as_json and as_csv:
        raise typer.BadParameter("--json or --csv, not both")
    first, last = _day(since, "--from"), _day(until, "--to")
    if first and last and last < first:
        raise typer.BadParameter("--to is before --from")
    settings = current_settings()
    ctx = report_context(settings, parse_now(now), with_pipeline=name == "pipeline")
    if worst_domains is not None:
        ctx = replace(ctx, domain_top=worst_domains)
    query = ReportQuery(since=first, until=last, cadence=cadence, owner=owner)
    result = run_report(engine_for(settings), name, query, ctx)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=result.columns, lineterminator="\n")
        writer.writeheader()
        for row in result.rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in result.columns})
    else:
        table = Table(title=result.title)
        for col in result.columns:
            table.add_column(col, justify="left" if col in _TEXT else "right")
        for row in result.rows:
            table.add_row(*(_cell(row.get(col)) for col in result.columns))
        out.print(table)
        if not result.rows:
            out.print("no data for these filters")


_TEXT = {"cadence", "step", "variant", "leader", "decision", "stage", "owner", "role", "mailbox",
         "source", "ae", "domain", "bounce_shield", "spam", "category", "period"}  # fmt: skip


def _near(name: str, names: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return found[0] if found else None
