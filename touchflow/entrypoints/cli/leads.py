"""CLI commands for prospects in, qualified leads out: enrich, score, explain, route, crm.

Registered on the main ``touchflow`` app by :mod:`touchflow.entrypoints.cli.commands`. Flows and
connectors are imported inside the commands that need them.
"""

from __future__ import annotations

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
)
from touchflow.errors import CadenceError
from touchflow.settings import Settings

crm_app = typer.Typer(help="Keep the CRM in sync (push leads and activities, pull changes).",
                      no_args_is_help=True)  # fmt: skip
app.add_typer(crm_app, name="crm")


def _findings_exit(exc: CadenceError) -> typer.Exit:
    for finding in exc.findings:
        out.print(str(finding), markup=False, soft_wrap=True)
    err.print(f"{len(exc.findings)} error(s)")
    return typer.Exit(1)


def _icp(settings: Settings):  # type: ignore[no-untyped-def]
    from touchflow.domain.scoring import load_icp

    path = settings.config_dir / "icp.yaml"
    if not path.exists():
        raise fail(f"no ICP: {path} does not exist")
    try:
        return load_icp(path)
    except CadenceError as exc:
        raise _findings_exit(exc) from None


def _router(settings: Settings):  # type: ignore[no-untyped-def]
    from touchflow.domain.routing import load_router

    try:
        return load_router(settings.config_dir)
    except CadenceError as exc:
        raise _findings_exit(exc) from None


def config_findings(settings: Settings) -> list:  # type: ignore[type-arg]
    """House rules for ``touchflow validate`` on config/: the ICP and the routing files."""
    from touchflow.domain.routing import load_router
    from touchflow.domain.scoring import icp_findings

    found = []
    icp = settings.config_dir / "icp.yaml"
    if icp.exists():
        found += icp_findings(icp)
    if (settings.config_dir / "team.yaml").exists() or (
        settings.config_dir / "routing.yaml"
    ).exists():
        try:
            load_router(settings.config_dir)
        except CadenceError as exc:
            found += exc.findings
    return found


@app.command()
def enrich(now: Annotated[str | None, typer.Option("--now")] = None) -> None:
    """Fill accounts' firmographics from config/firmographics.csv and the REST provider."""
    from touchflow.bootstrap import enricher
    from touchflow.services.enrichment import enrich_accounts

    settings = current_settings()
    source = enricher(settings)
    if source is None:
        raise fail("no enrichment source: add config/firmographics.csv or set "
                    "TOUCHFLOW_ENRICHMENT__BASE_URL")  # fmt: skip
    try:
        with engine_for(settings).begin() as conn:
            report = enrich_accounts(conn, source, parse_now(now))
    finally:
        source.close()
    out.print(
        f"accounts: {report.looked_up} looked up, {report.enriched} enriched, "
        f"{report.unchanged} unchanged, {report.not_found} not found; "
        f"{report.prospects_updated} prospects got their country"
    )


@app.command()
def score(now: Annotated[str | None, typer.Option("--now")] = None) -> None:
    """Rescore every prospect against config/icp.yaml (history kept for changes)."""
    from touchflow.services.scoring import rescore_all

    settings = current_settings()
    icp = _icp(settings)
    report = rescore_all(engine_for(settings), icp, parse_now(now))
    out.print(f"scored {report.scored} ({report.changed} changed) with ICP {report.icp_version}")
    t = Table(title="Grades and stages")
    for col in ("grade", "count", "", "lifecycle", "count "):
        t.add_column(col)
    grades = sorted(report.by_grade.items())
    stages = sorted(report.by_lifecycle.items())
    for i in range(max(len(grades), len(stages))):
        g = grades[i] if i < len(grades) else ("", "")
        s = stages[i] if i < len(stages) else ("", "")
        t.add_row(str(g[0]), str(g[1]), "", str(s[0]), str(s[1]))
    out.print(t)


@app.command()
def explain(
    email: Annotated[str, typer.Argument(help="The prospect's email address.")],
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Why a prospect scores what they score: every reason, and the score history."""
    from touchflow.services.scoring import explain_score

    settings = current_settings()
    icp = _icp(settings)
    exp = explain_score(engine_for(settings), icp, email, parse_now(now))
    if exp is None:
        raise fail(f"no prospect {email!r}")
    for line in exp.lines():
        out.print(line, markup=False)


@app.command()
def route(
    backtest: Annotated[
        Path | None, typer.Option("--backtest", help="Replay past leads (CSV) through the rules.")
    ] = None,
    reroute: Annotated[
        bool, typer.Option("--reroute", help="Only reroute leads past their SLA.")
    ] = False,
    min_lifecycle: Annotated[
        str,
        typer.Option(
            "--min-lifecycle",
            help="Route prospects at this stage or later: lead (also unscored), mql, sql.",
        ),
    ] = "mql",
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Assign unrouted prospects to AEs (config/team.yaml, config/routing.yaml).

    By default MQLs and SQLs, as the ``intake`` flow does.
    """
    from touchflow.domain.routing import backtest as run_backtest
    from touchflow.domain.routing import read_backtest_csv
    from touchflow.services.routing import ROUTABLE, reroute_and_route

    if min_lifecycle not in ROUTABLE:
        raise fail(f"--min-lifecycle must be one of {', '.join(ROUTABLE)}, not {min_lifecycle!r}")
    settings = current_settings()
    router = _router(settings)
    if backtest is not None:
        try:
            leads = read_backtest_csv(backtest)
        except CadenceError as exc:
            raise _findings_exit(exc) from None
        report = run_backtest(leads, router.team, router.routing)
        for line in report.lines():
            out.print(line, markup=False)
        return
    # The CRM gets every routed lead (pushed by `touchflow crm sync`).
    crm = settings.crm.provider if settings.crm.provider != "none" else None
    run = reroute_and_route(
        engine_for(settings),
        router,
        parse_now(now),
        crm=crm,
        min_lifecycle=min_lifecycle,
        route_new=not reroute,
    )
    by: dict[str, int] = {}
    for d in run.routed:
        by[d.assignee] = by.get(d.assignee, 0) + 1
    routed, rerouted = run.routed, run.rerouted
    t = Table(title=f"Routed {len(routed)} lead(s); rerouted {len(rerouted)} past their SLA")
    t.add_column("assignee")
    t.add_column("leads", justify="right")
    for who, n in sorted(by.items(), key=lambda kv: (-kv[1], kv[0])):
        t.add_row(who, str(n))
    out.print(t)


@crm_app.command("sync")
def crm_sync() -> None:
    """One sync now (what the sync-crm deployment runs every 5 minutes)."""
    from contextlib import closing

    from touchflow.bootstrap import crm_sync as build_sync

    sync = build_sync(current_settings())
    if sync is None:
        out.print("no CRM configured (TOUCHFLOW_CRM__PROVIDER)")
        return
    with closing(sync):
        out.print(sync.run(parse_now(None)))


@crm_app.command("status")
def crm_status() -> None:
    """The CRM outbox: pending, done and failed pushes (failed ones show their error)."""
    from touchflow.services.crm_sync import outbox_summary

    settings = current_settings()
    crm = settings.crm.provider
    summary = outbox_summary(engine_for(settings), crm, failed_limit=20)
    counts = summary.counts
    out.print(f"{crm}: " + (", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "empty"))
    for r in summary.failed:
        out.print(f"failed {r.operation} {r.key} after {r.attempts} attempt(s): {r.last_error}",
                  markup=False)  # fmt: skip
