"""`make demo` end to end, shortened (30 prospects, one simulated day): it ends with the
deal history loaded, the forecast and the backtest line, touchflow's MAPE beside the
naive method's."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import ROOT


def test_the_demo_ends_with_the_forecast_and_its_backtest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from touchflow.demo.run import run_demo
    from touchflow.entrypoints.flows import local

    monkeypatch.setattr(local, "RECORDER_DRAIN_S", 0)
    monkeypatch.chdir(ROOT)  # the bundled cadences, templates and config/pipeline.yaml
    console = Console(record=True, width=200, highlight=False)
    counts = run_demo(prospects=30, days=1, workdir=tmp_path / "demo-run", console=console)
    text = console.export_text()

    assert counts["deals"] == 1457 and counts["open_deals"] == 105
    assert counts["backtest_periods"] == 7
    assert counts["mape_touchflow"] < counts["mape_naive"]
    assert "deals: 1457 read, 1457 new" in text and "0 rejected" in text
    assert "pipeline snapshot 2026-12-01: 105 open deals" in text
    assert "Forecast as of 2026-12-01 00:00 UTC (USD)" in text
    q4 = next(line for line in text.splitlines() if line.startswith("│ 2026-Q4"))
    assert "434,924" in q4 and "714,233" in q4  # won to date, expected (docs/forecast.md)
    line = next(line for line in text.splitlines() if line.startswith("backtest over 7 periods"))
    assert "(2025-Q1 to 2026-Q3): MAPE touchflow 9.3%, naive 29.0%, commit 46.3%" in line
    assert (tmp_path / "demo-run" / "deals" / "close_dates.csv").exists()
