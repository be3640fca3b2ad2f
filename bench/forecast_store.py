"""Benchmark: `touchflow forecast` and its backtest through the store, 50,000 deals.

The demo generator's history scaled to ``--deals`` (stage and close-date
history included), loaded with the service ``touchflow deals import`` uses,
then, on SQLite and (with ``--postgres-url``, or ``TOUCHFLOW_TEST_POSTGRES_URL``)
on PostgreSQL, in a private schema dropped afterwards:

* ``import_s``: ``import_deals`` of the three CSV files (deals, stages, close dates);
* ``snapshot_s``: one daily pipeline snapshot;
* ``read_s``: reading what the forecast needs (``forecast_input``: deals as of
  the date, stage and close-date history merged with the snapshot);
* ``forecast_s``: ``run_forecast``, two quarters, ``--draws`` draws (read included);
* ``backtest_quarters_s``: ``run_backtest`` over the 7 complete quarters 2025-Q1 to
  2026-Q3 (read included), ``--backtest-draws`` draws a period.

Beside them, in the same run, the pure forecast and backtest on the same
history held in memory (``pure``): the store's share is the difference.
The figures (expected, MAPE) must be the same from the store and from memory.
The last line of output is one JSON object.
Run: ``.venv/bin/python bench/forecast_store.py [--deals N] [--draws N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from touchflow.demo import deal_history as dh  # noqa: E402
from touchflow.domain.forecasting import backtest, forecast  # noqa: E402
from touchflow.domain.pipeline import load_pipeline  # noqa: E402
from touchflow.services.deals import import_deals, take_snapshot  # noqa: E402
from touchflow.services.forecasting import (  # noqa: E402
    forecast_input,
    forecast_pipeline,
    run_backtest,
    run_forecast,
)
from touchflow.store.db import make_engine, upgrade  # noqa: E402

START, END = date(2025, 1, 1), date(2026, 12, 31)


def _through_store(
    url: str, files: tuple[Path, Path, Path], h: dh.DealHistory, draws: int, bt_draws: int
) -> dict[str, Any]:
    pipeline = load_pipeline(ROOT / "config" / "pipeline.yaml")
    engine = make_engine(url)
    out: dict[str, Any] = {}
    try:
        upgrade(engine)
        deals_csv, stages_csv, dates_csv = files
        t = time.perf_counter()
        summary = import_deals(
            engine, deals_csv, pipeline, h.as_of, history_path=stages_csv,
            close_dates_path=dates_csv, write_rejects=False,
        )  # fmt: skip
        out["import_s"] = round(time.perf_counter() - t, 2)
        assert not summary.rejected, summary.rejected[:3]
        t = time.perf_counter()
        take_snapshot(engine, h.as_of.date())
        out["snapshot_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        with engine.connect() as conn:
            data = forecast_input(conn, h.as_of)
        out["read_s"] = round(time.perf_counter() - t, 2)
        out["read_rows"] = {
            "deals": len(data.deals),
            "stage_changes": len(data.changes),
            "close_date_changes": len(data.close_dates),
        }
        t = time.perf_counter()
        f = run_forecast(engine, pipeline, h.as_of, periods=2, draws=draws)
        out["forecast_s"] = round(time.perf_counter() - t, 2)
        out["expected"] = round(f.periods[0].expected)
        t = time.perf_counter()
        r = run_backtest(engine, pipeline, start=START, end=END, now=h.as_of, draws=bt_draws)
        out["backtest_quarters_s"] = round(time.perf_counter() - t, 2)
        out["mape"] = r.to_json()["mape"]
    finally:
        engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=50_000)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--backtest-draws", type=int, default=500)
    parser.add_argument("--postgres-url", default=os.environ.get("TOUCHFLOW_TEST_POSTGRES_URL"))
    args = parser.parse_args()

    t = time.perf_counter()
    h = dh.generate(per_month=34.0 * args.deals / 1390)
    out: dict[str, Any] = {
        "deals": len(h.deals),
        "stage_changes": len(h.changes),
        "close_date_changes": len(h.close_dates),
        "open_deals": sum(d.outcome is None for d in h.deals),
        "draws": args.draws,
        "backtest_draws": args.backtest_draws,
        "generate_s": round(time.perf_counter() - t, 1),
    }
    pipe = forecast_pipeline(load_pipeline(ROOT / "config" / "pipeline.yaml"))

    t = time.perf_counter()
    f = forecast(
        h.deals, h.changes, h.as_of, pipe, periods=2, close_date_changes=h.close_dates,
        draws=args.draws,
    )  # fmt: skip
    pure: dict[str, Any] = {"forecast_s": round(time.perf_counter() - t, 2)}
    pure["expected"] = round(f.periods[0].expected)
    t = time.perf_counter()
    r = backtest(
        h.deals, h.changes, pipe, start=START, end=END, close_date_changes=h.close_dates,
        draws=args.backtest_draws, now=h.as_of,
    )  # fmt: skip
    pure["backtest_quarters_s"] = round(time.perf_counter() - t, 2)
    pure["mape"] = r.to_json()["mape"]
    out["pure"] = pure
    print(json.dumps({"pure": pure}), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        files = dh.write_csvs(Path(tmp) / "csv", h)
        out["sqlite"] = _through_store(
            f"sqlite:///{Path(tmp) / 'forecast.db'}", files, h, args.draws, args.backtest_draws
        )
        print(json.dumps({"sqlite": out["sqlite"]}), flush=True)
        if args.postgres_url:
            base = args.postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
            admin = create_engine(base)
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            sep = "&" if "?" in args.postgres_url else "?"
            try:
                out["postgres"] = _through_store(
                    f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}",
                    files, h, args.draws, args.backtest_draws,
                )  # fmt: skip
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    for backend in ("sqlite", "postgres"):
        if backend in out:
            assert out[backend]["expected"] == pure["expected"], (backend, out[backend], pure)
            assert out[backend]["mape"] == pure["mape"], (backend, out[backend], pure)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
