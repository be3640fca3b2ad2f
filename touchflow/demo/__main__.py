"""``python -m touchflow.demo`` (what ``make demo`` runs): three simulated weeks, end to end.

The demo sits above the edges: it runs the real ``run_cadences`` flow, so it is
not a ``touchflow`` subcommand (the CLI never imports the flows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from touchflow.demo.dashboard_hint import dashboard_hint
from touchflow.demo.run import START, run_demo


def main(
    prospects: Annotated[int, typer.Option("--prospects", min=1)] = 500,
    days: Annotated[int, typer.Option("--days", min=1)] = 21,
    workdir: Annotated[Path, typer.Option("--workdir")] = Path("demo-run"),
) -> None:
    """Generate sample prospects and run three simulated weeks of ticks to a local sink."""
    console = Console(highlight=False, soft_wrap=True)
    run_demo(prospects=prospects, days=days, workdir=workdir, console=console)
    console.print()
    console.print(dashboard_hint(workdir, START, days), markup=False)


if __name__ == "__main__":
    typer.run(main)
