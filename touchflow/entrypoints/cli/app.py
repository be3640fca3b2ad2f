"""The ``touchflow`` typer app and the helpers every command module shares.

Exit codes: 0 ok, 1 findings or failure, 2 usage error.

This is the interface layer: unlike the rest of ``touchflow/`` it may reach
the flows and connectors, and does so only inside the commands that need them
(through ``touchflow.bootstrap``, the composition root), so ``validate`` or
``simulate`` never start Prefect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console

from touchflow.domain.cadence import Cadence, load_cadence
from touchflow.errors import CadenceError
from touchflow.settings import Settings

app = typer.Typer(
    name="touchflow",
    help="Code-first outreach cadences: validate, preview, simulate and run them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
task_app = typer.Typer(help="Work one task (call, LinkedIn, manual).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(task_app, name="task")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def current_settings() -> Settings:
    """This process's settings (environment and ``.env``), through the composition root."""
    from touchflow.bootstrap import load_settings

    return load_settings()


def parse_now(value: str | None) -> datetime:
    """``--now``/``--at`` as an aware time (now when not given); a usage error if unreadable."""
    from touchflow.domain.simulate import parse_instant

    if value is None:
        return datetime.now(UTC)
    try:
        return parse_instant(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}") from None


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit (code 1) for the caller to raise."""
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def cadence_or_exit(settings: Settings, cadence_id: str) -> Cadence:
    """The cadence ``cadences/<id>.yaml``, or its findings printed and exit code 1."""
    path = settings.cadences_dir / f"{cadence_id}.yaml"
    if not path.exists():
        raise fail(f"no cadence {cadence_id!r}: {path} does not exist")
    try:
        return load_cadence(path, settings.templates_dir, settings.calendars_file)
    except CadenceError as exc:
        for finding in exc.findings:
            err.print(str(finding), markup=False)
        raise typer.Exit(1) from None


def engine_for(settings: Settings) -> Any:
    """The configured database's engine (one per URL per process)."""
    from touchflow.bootstrap import database

    return database(settings)
