"""Benchmark: the forecast and its backtest over 50,000 deals with stage history.

Measured in the same run, on the demo generator's history scaled up:

* ``cut_s``: ``cut_history`` at the as-of (what was known then);
* ``estimate_s``: learning the stage model from it;
* ``forecast_s``: the whole forecast (cut, model, per-deal probabilities and
  reasons, Monte Carlo with ``--draws`` draws) for two quarters;
* ``naive_s``: the naive stage-weighted pipeline computed straight from the
  deal records (sum of amount x stage probability for open deals whose close
  date is in the quarter), the floor any forecast is compared with;
* ``naive_cut_s``: the same naive figure made honest for a past as-of (the
  cut first, then the sum);
* ``backtest_quarters_s``, ``backtest_months_s``: the backtest over the last
  7 complete quarters and 18 complete months.

The last line of output is one JSON object with these keys.
Run: ``.venv/bin/python bench/forecast.py [--deals N] [--draws N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from touchflow.demo import deal_history as dh  # noqa: E402
from touchflow.domain.forecasting import (  # noqa: E402
    backtest,
    cut_history,
    estimate,
    forecast,
    period_containing,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=50_000)
    parser.add_argument("--draws", type=int, default=2000)
    args = parser.parse_args()

    t = time.perf_counter()
    # 34 new deals a month make about 1,390 deals over the history: scale to the target.
    h = dh.generate(per_month=34.0 * args.deals / 1390)
    gen_s = time.perf_counter() - t
    pipe = dh.pipeline("quarter")
    as_of = h.as_of
    out: dict[str, Any] = {
        "deals": len(h.deals),
        "stage_changes": len(h.changes),
        "close_date_changes": len(h.close_dates),
        "open_deals": sum(d.outcome is None for d in h.deals),
        "draws": args.draws,
        "generate_s": round(gen_s, 2),
    }

    t = time.perf_counter()
    known = cut_history(h.deals, h.changes, as_of, close_date_changes=h.close_dates)
    out["cut_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    estimate(known, pipe.stages)
    out["estimate_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    f = forecast(
        h.deals,
        h.changes,
        as_of,
        pipe,
        periods=2,
        close_date_changes=h.close_dates,
        draws=args.draws,
    )
    out["forecast_s"] = round(time.perf_counter() - t, 3)
    q = f.periods[0]

    quarter = period_containing(as_of.date(), "quarter")
    t = time.perf_counter()
    naive = sum(
        pipe.convert(d.amount, d.currency) * pipe.probability(d.stage)
        for d in h.deals
        if d.outcome is None and d.close_date is not None and d.close_date < quarter.end
    )
    out["naive_s"] = round(time.perf_counter() - t, 4)
    t = time.perf_counter()
    known = cut_history(h.deals, h.changes, as_of, close_date_changes=h.close_dates)
    naive_cut = sum(
        pipe.convert(d.amount, d.currency) * pipe.probability(d.stage)
        for d in known.deals
        if d.outcome is None and d.close_date is not None and d.close_date < quarter.end
    )
    out["naive_cut_s"] = round(time.perf_counter() - t, 3)
    assert abs(naive - naive_cut) < 1e-6 * max(1.0, naive), (naive, naive_cut)
    assert abs(naive - q.weighted_pipeline) < 1e-6 * max(1.0, naive), (naive, q.weighted_pipeline)
    out["forecast"] = {
        "period": q.period.label,
        "won_to_date": round(q.won_to_date),
        "expected": round(q.expected),
        "p10": round(q.p10),
        "p90": round(q.p90),
        "naive": round(naive),
    }

    bt_draws = max(200, args.draws // 4)
    t = time.perf_counter()
    bq = backtest(
        h.deals,
        h.changes,
        pipe,
        start=date(2025, 1, 1),
        end=date(2026, 12, 31),
        close_date_changes=h.close_dates,
        draws=bt_draws,
        now=as_of,
    )
    out["backtest_quarters_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    bm = backtest(
        h.deals,
        h.changes,
        dh.pipeline("month"),
        start=date(2025, 6, 1),
        end=date(2026, 12, 31),
        close_date_changes=h.close_dates,
        draws=bt_draws,
        now=as_of,
    )
    out["backtest_months_s"] = round(time.perf_counter() - t, 2)
    out["backtest_draws"] = bt_draws
    for name, r in (("quarters", bq), ("months", bm)):
        j = r.to_json()
        out[f"backtest_{name}"] = {
            "periods": len(j["periods"]),
            "mape": j["mape"],
            "bias": j["bias"],
            "interval_coverage": j["interval_coverage"],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
