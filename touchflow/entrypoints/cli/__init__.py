"""The ``touchflow`` command line (typer + rich): ``touchflow --help``, ``python -m touchflow``.

Importing this package registers every command on :data:`app`; each command
module imports only :mod:`touchflow.entrypoints.cli.app` (never another
command module's internals), so any of them can be imported on its own.
"""

from __future__ import annotations

from touchflow.entrypoints.cli import commands, leads, ops  # noqa: F401  (registers commands)
from touchflow.entrypoints.cli.app import app, err
from touchflow.errors import TouchflowError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point that maps touchflow errors to exit code 1."""
    try:
        app()
    except TouchflowError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(1) from None
