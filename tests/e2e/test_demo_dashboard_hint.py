"""`make demo` ends with the commands that open the dashboard over the demo's database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from touchflow.demo.dashboard_hint import DEMO_USER, dashboard_hint


def test_the_hint_names_the_database_the_user_the_server_and_the_url(tmp_path: Path) -> None:
    start = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    text = dashboard_hint(tmp_path / "demo-run", start, 21)
    lines = [line.strip() for line in text.splitlines()]
    db = (tmp_path / "demo-run" / "touchflow.db").resolve()
    assert f"export TOUCHFLOW_DATABASE_URL=sqlite:///{db}" in lines
    assert any(
        line.startswith(f".venv/bin/touchflow users add {DEMO_USER} --role admin") for line in lines
    )
    assert ".venv/bin/touchflow serve --port 8000" in lines
    assert "then open http://127.0.0.1:8000/dashboard?from=2026-11-30&to=2026-12-21" in lines
