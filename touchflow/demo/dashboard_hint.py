"""What ``make demo`` prints last: how to open the dashboard over the demo's database."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["DEMO_USER", "dashboard_hint"]

DEMO_USER = "demo@touchflow.example"


def dashboard_hint(workdir: Path, start: datetime, days: int, port: int = 8000) -> str:
    """The exact commands: a dashboard user in the demo's database, ``serve`` over it, the URL.

    The URL's ``from``/``to`` are the simulated weeks (the dashboard's default
    window ends today, which may be outside them).
    """
    db = f"sqlite:///{(workdir / 'touchflow.db').resolve()}"
    first = start.date().isoformat()
    last = (start + timedelta(days=days)).date().isoformat()
    return "\n".join(
        [
            "Open the dashboard over the demo's data:",
            "",
            f"  export TOUCHFLOW_DATABASE_URL={db}",
            f"  .venv/bin/touchflow users add {DEMO_USER} --role admin   # asks for a password",
            f"  .venv/bin/touchflow serve --port {port}",
            "",
            f"  then open http://127.0.0.1:{port}/dashboard?from={first}&to={last}",
            f"  and sign in as {DEMO_USER} (Cadences, Team, Deliverability,"
            " Pipeline & forecast and Accounts are in the top bar).",
        ]
    )
