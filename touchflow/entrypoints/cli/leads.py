"""CLI commands for prospects in, qualified leads out: enrich, score, explain, route, crm.

Registered on the main ``touchflow`` app by :mod:`touchflow.entrypoints.cli.commands`. Flows and
connectors are imported inside the commands that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from touchflow.errors import ConnectorError, FindingsError
from touchflow.settings import Settings

if TYPE_CHECKING:
    from touchflow.services.crm_sync import DrainReport

crm_app = typer.Typer(help="Keep the CRM in sync (push leads and activities, pull changes).",
                      no_args_is_help=True)  # fmt: skip
app.add_typer(crm_app, name="crm")


def _findings_exit(exc: FindingsError) -> typer.Exit:
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
    except FindingsError as exc:  # ConfigFileError: icp.yaml
        raise _findings_exit(exc) from None


def _router(settings: Settings):  # type: ignore[no-untyped-def]
    from touchflow.domain.routing import load_router

    try:
        return load_router(settings.config_dir)
    except FindingsError as exc:  # ConfigFileError: team.yaml or routing.yaml
        raise _findings_exit(exc) from None


def config_findings(settings: Settings) -> list:  # type: ignore[type-arg]
    """House rules for ``touchflow validate`` on config/: ICP, routing, pipeline and calls files.

    Routing files that load also get their warnings (pools that could surprise).
    """
    from touchflow.domain.pipeline import pipeline_findings
    from touchflow.domain.routing import load_router, pool_warnings
    from touchflow.domain.scoring import icp_findings

    found = []
    pipeline = settings.config_dir / "pipeline.yaml"
    if pipeline.exists():
        found += pipeline_findings(pipeline)
    icp = settings.config_dir / "icp.yaml"
    if icp.exists():
        found += icp_findings(icp)
    if icp.exists() and settings.guidance_file.exists():
        found += _score_event_warnings(settings, icp)
    if settings.calls_file.exists():
        from touchflow.domain.call_consent import calls_findings
        from touchflow.domain.model_findings import read_text

        try:
            found += calls_findings(read_text(settings.calls_file), str(settings.calls_file))
        except FindingsError as exc:  # unreadable
            found += exc.findings
    if (settings.config_dir / "team.yaml").exists() or (
        settings.config_dir / "routing.yaml"
    ).exists():
        try:
            router = load_router(settings.config_dir)
        except FindingsError as exc:  # ConfigFileError: team.yaml or routing.yaml
            found += exc.findings
        else:
            found += pool_warnings(router.team, router.routing)
    return found


def _score_event_warnings(settings: Settings, icp: Path) -> list:  # type: ignore[type-arg]
    """Trackers whose ``score_event`` icp.yaml gives no points (guidance.md, after the call)."""
    from touchflow.domain.guidance.config import score_event_warnings
    from touchflow.domain.model_findings import read_text
    from touchflow.domain.scoring import load_icp

    try:
        points = load_icp(icp).engagement.points
        text = read_text(settings.guidance_file)
    except FindingsError:  # the files' own findings say why
        return []
    return score_event_warnings(text, str(settings.guidance_file), points, str(icp))


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
        except FindingsError as exc:
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
    routed, rerouted = run.routed, run.rerouted
    t = Table(title=f"Routed {len(routed)} lead(s); rerouted {len(rerouted)} past their SLA")
    for col in ("lead", "assignee", "rule", "reason"):
        t.add_column(col, overflow="fold")
    for r in rerouted:  # the reason starts "reroute after <who> missed the SLA"
        d = r.decision
        t.add_row(d.lead, d.assignee + (" (fallback)" if d.fallback else ""), d.rule, d.reason)
    for d in routed:
        t.add_row(d.lead, d.assignee + (" (fallback)" if d.fallback else ""), d.rule, d.reason)
    out.print(t)
    by: dict[str, int] = {}
    for d in [*(r.decision for r in rerouted), *routed]:
        by[d.assignee] = by.get(d.assignee, 0) + 1
    if by:
        counts = Table(title="Leads per assignee")
        counts.add_column("assignee")
        counts.add_column("leads", justify="right")
        for who, n in sorted(by.items(), key=lambda kv: (-kv[1], kv[0])):
            counts.add_row(who, str(n))
        out.print(counts)


_OPERATIONS = {"push_lead": "leads", "log_activity": "activities"}


@crm_app.command("sync")
def crm_sync(
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill",
            help="First queue every routed lead the CRM never had (routed before it was set up).",
        ),
    ] = False,
    now: Annotated[str | None, typer.Option("--now", help="ISO time to run at.")] = None,
) -> None:
    """One sync now (what the sync-crm deployment runs every 5 minutes), as a table.

    Exits 1 when a push failed for good or the pull failed.
    """
    from contextlib import closing

    from touchflow.bootstrap import crm_sync as build_sync

    sync = build_sync(current_settings())
    if sync is None:
        out.print("no CRM configured (TOUCHFLOW_CRM__PROVIDER)")
        return
    at = parse_now(now)
    with closing(sync):
        crm = sync.connector.name
        if backfill:
            n = sync.backfill(at)
            out.print(f"backfill: queued {n} routed lead(s) {crm} never had")
        queued = sync.queue(at)
        report = sync.push_report(at)
        _print_push(crm, queued, report)
        # The pushes are reported even when the pull then fails (a bad token fails both).
        try:
            pulled = sync.pull(at)
        except ConnectorError as exc:
            pull_error: str | None = str(exc)
        else:
            pull_error = None
            out.print("pull: " + ", ".join(f"{k} {v}" for k, v in pulled.items()), markup=False)
        missing = 0 if backfill else sync.unqueued_leads()
    if missing:
        err.print(
            f"{missing} routed lead(s) were never queued for {crm} (routed before it was "
            "configured): run `touchflow crm sync --backfill`",
            markup=False,
        )
    if pull_error is not None:
        err.print(f"pull failed: {pull_error}", markup=False)
    if pull_error is not None or report.failed:
        raise typer.Exit(1)


def _print_push(crm: str, queued: int, report: DrainReport) -> None:
    """The push as a table per connector, and the rows that did not go, grouped by reason."""
    t = Table(title=f"CRM sync: {crm} ({queued} new activities queued)")
    for col in ("connector", "pushes", "pushed", "retrying", "failed"):
        t.add_column(col, justify="left" if col in ("connector", "pushes") else "right")
    for op, label in _OPERATIONS.items():
        got = [report.outcomes[op, k] for k in ("pushed", "retrying", "failed")]
        t.add_row(crm, label, *map(str, got))
    out.print(t)
    if report.reasons:
        why = Table(title="Not pushed, and why")
        for col in ("connector", "pushes", "rows", "reason"):
            why.add_column(col, overflow="fold")
        for (op, reason), n in sorted(report.reasons.items(), key=lambda kv: -kv[1]):
            why.add_row(crm, _OPERATIONS.get(op, op), str(n), reason)
        out.print(why)


_OWNER_STATUS = {
    "ok": "ok",
    "unknown": "unknown in the CRM",
    "inactive": "inactive in the CRM",
    "matched_by_email": "no crm_owner_id; matched by email",
    "no_owner": "no crm_owner_id, and no CRM owner has this email: leads get no owner",
}


@crm_app.command("check")
def crm_check() -> None:
    """Check the CRM: team.yaml owner ids exist there, and the custom fields touchflow needs.

    Exits 1 when something needs fixing.
    """
    from contextlib import closing

    from touchflow.bootstrap import crm_connector
    from touchflow.services.crm_check import TeamOwner, check_crm

    settings = current_settings()
    router = _router(settings)
    connector = crm_connector(settings)
    if connector is None:
        raise fail("no CRM configured: set TOUCHFLOW_CRM__PROVIDER")
    team = [
        TeamOwner(m.email, m.crm_owner_id, m.role == "ae" and m.active) for m in router.team.members
    ]
    with closing(connector):
        report = check_crm(connector, team)
    owners = Table(title=f"Owners in {report.crm} (config/team.yaml crm_owner_id)")
    for col in ("member", "crm_owner_id", "CRM owner", "status"):
        owners.add_column(col, overflow="fold")
    for o in report.owners:
        found = f"{o.owner.id} {o.owner.email}" if o.owner else ""
        style = "" if o.ok else "red"
        owners.add_row(o.email, o.crm_owner_id or "", found, _OWNER_STATUS[o.status], style=style)
    out.print(owners)
    fields = Table(title=f"Custom fields in {report.crm}")
    for col in ("object", "field", "why touchflow needs it", "status"):
        fields.add_column(col, overflow="fold")
    for f in report.fields:
        status = f.problem or ("ok" + (f" ({f.note})" if f.note else ""))
        fields.add_row(f.object, f.field, f.purpose, status, style="" if f.ok else "red")
    if not report.fields:
        fields.add_row("", "", "none needed with this configuration", "ok")
    out.print(fields)
    if report.problems:
        err.print(f"{report.problems} problem(s) in {report.crm}")
        raise typer.Exit(1)
    err.print(f"ok: {report.crm} has every owner and field touchflow needs")


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
