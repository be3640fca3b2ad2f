"""``touchflow guidance``: live call guidance's housekeeping (transcript retention).

Registered on the main app by :mod:`touchflow.entrypoints.cli` (imported there).
"""

from __future__ import annotations

from typing import Annotated

import typer

from touchflow.entrypoints.cli.app import app, current_settings, engine_for, out, parse_now

guidance_app = typer.Typer(
    help="Live call guidance: call transcripts and their retention.", no_args_is_help=True
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
