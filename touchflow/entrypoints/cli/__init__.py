"""The ``touchflow`` command line (typer + rich): ``touchflow --help``, ``python -m touchflow``.

Importing this package registers every command on :data:`app`; each command
module imports only :mod:`touchflow.entrypoints.cli.app` (never another
command module's internals), so any of them can be imported on its own.
"""

from __future__ import annotations

from touchflow.entrypoints.cli import (  # noqa: F401  (registers commands)
    commands,
    deals,
    forecast,
    guidance,
    leads,
    ops,
    reports,
    users,
)
from touchflow.entrypoints.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``touchflow`` script: errors become one line and exit code 1 (see ``TouchflowGroup``)."""
    app()
