"""``touchflow guidance``: live call guidance's housekeeping (retention, after-call summaries).

Registered on the main app by :mod:`touchflow.entrypoints.cli` (imported there).
"""

from __future__ import annotations

from typing import Annotated

import typer

from touchflow.entrypoints.cli.app import app, current_settings, engine_for, fail, out, parse_now

guidance_app = typer.Typer(
    help="Live call guidance: call transcripts, their retention and after-call summaries.",
    no_args_is_help=True,
)
app.add_typer(guidance_app, name="guidance")


@guidance_app.command("purge")
def guidance_purge(
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            min=0,
            metavar="DAYS",
            help="Delete transcripts older than this many days "
            "(default: retention_days in config/calls.yaml).",
        ),
    ] = None,
    now: Annotated[str | None, typer.Option("--now", help="Pretend it is this time.")] = None,
) -> None:
    """Delete call transcripts past their retention (the daily purge_transcripts flow does too)."""
    from touchflow import bootstrap
    from touchflow.services.call_transcripts import purge_old_transcripts

    settings = current_settings()
    days = older_than if older_than is not None else bootstrap.calls_config(settings).retention_days
    calls, segments = purge_old_transcripts(engine_for(settings), parse_now(now), days)
    out.print(f"deleted {calls} call transcripts and {segments} segments older than {days} days")


@guidance_app.command("summarise")
def guidance_summarise(
    call_sid: Annotated[
        str | None,
        typer.Argument(metavar="[CALL_SID]", help="Summarise this call (again); default: sweep."),
    ] = None,
    now: Annotated[str | None, typer.Option("--now", help="Pretend it is this time.")] = None,
) -> None:
    """After-call summaries: one call, or every call that ended without one or went quiet.

    The summarise_calls flow runs the sweep every 10 minutes; summarising a call twice
    stores one summary.
    """
    from touchflow import bootstrap

    settings = current_settings()
    summaries = bootstrap.call_summaries(settings)
    if summaries is None:
        raise fail(f"no {settings.guidance_file}: nothing to summarise calls with")
    at = parse_now(now)
    if call_sid is not None:
        stored = summaries.summarise(call_sid, at)
        if stored is None:
            raise fail(f"no transcript of call {call_sid}")
        out.print(
            f"summarised {call_sid}" + (f" (task {stored.task_id})" if stored.task_id else "")
        )
        return
    report = summaries.sweep(at)
    out.print(f"summarised {len(report.summarised)} calls")
    for sid, why in report.failed.items():
        out.print(f"[red]failed[/red] {sid}: {why}")
    if report.failed:
        raise typer.Exit(1)
