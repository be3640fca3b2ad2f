"""The backtest on the bundled demo history: no leakage, and touchflow beats the naive method."""

from __future__ import annotations

import csv
import itertools
import statistics
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from touchflow.demo import deal_history as dh
from touchflow.domain.deals import Deal, DealOutcome, StageChange
from touchflow.domain.forecasting import (
    BacktestResult,
    CloseDateChange,
    backtest,
    period_containing,
)

DRAWS = 400


@pytest.fixture(scope="module")
def history() -> dh.DealHistory:
    return dh.generate()


@pytest.fixture(scope="module")
def quarterly(history: dh.DealHistory) -> BacktestResult:
    """The last complete quarters of the demo history, each forecast as of its first day."""
    return backtest(
        history.deals,
        history.changes,
        dh.pipeline("quarter"),
        start=date(2025, 1, 1),
        end=date(2026, 12, 31),
        close_date_changes=history.close_dates,
        draws=DRAWS,
        now=history.as_of,
    )


def _as_known_then(
    h: dh.DealHistory, as_of: datetime
) -> tuple[list[Deal], list[StageChange], list[CloseDateChange]]:
    """The input a store would have held at ``as_of``: nothing after it exists."""
    changes = [c for c in h.changes if c.entered_at <= as_of]
    dates = [c for c in h.close_dates if c.changed_at <= as_of]
    deals = []
    for d in h.deals:
        if d.created_at > as_of:
            continue
        if d.closed_at is not None and d.closed_at > as_of:
            stage = [c.stage for c in changes if c.deal_id == d.deal_id][-1]
            close = [c.close_date for c in dates if c.deal_id == d.deal_id][-1]
            d = replace(d, stage=stage, closed_at=None, outcome=None, close_date=close)
        deals.append(d)
    return deals, changes, dates


def test_a_period_sees_nothing_after_its_start(
    history: dh.DealHistory, quarterly: BacktestResult
) -> None:
    pipe = dh.pipeline("quarter")
    q = period_containing(date(2025, 10, 1), "quarter")
    deals, changes, dates = _as_known_then(history, q.start_at)
    assert len(deals) < len(history.deals) and len(changes) < len(history.changes)
    cut = backtest(
        deals, changes, pipe, start=q.start, end=q.start, close_date_changes=dates, draws=DRAWS
    )
    row = next(p for p in quarterly.periods if p.period == q)
    (alone,) = cut.periods
    assert (alone.expected, alone.p10, alone.p50, alone.p90, alone.naive, alone.commit) == (
        row.expected,
        row.p10,
        row.p50,
        row.p90,
        row.naive,
        row.commit,
    )
    assert row.actual > 0 and alone.actual == 0  # the outcome is what was cut away


def _print(label: str, result: dict) -> None:  # type: ignore[type-arg]
    print(f"\n{label}: period actual | touchflow expected [p10, p90] | naive | commit")
    for p in result["periods"]:
        t = p["touchflow"]
        print(
            f"  {p['period']} {p['actual']:>11,.0f} | {t['expected']:>11,.0f} "
            f"[{t['p10']:>11,.0f}, {t['p90']:>11,.0f}] | {p['naive']:>11,.0f} "
            f"| {p['commit']:>11,.0f}"
        )
    print(f"  MAPE % {result['mape']}  bias % {result['bias']}")
    print(f"  P10-P90 coverage {result['interval_coverage']:.0%}")


def test_touchflow_beats_the_naive_pipeline_quarterly(quarterly: BacktestResult) -> None:
    r = quarterly.to_json()
    _print("quarterly", r)
    assert next(p["period"] for p in r["periods"]) == "2025-Q1"
    assert len(r["periods"]) == 7  # 2026-Q4 is not over at the history's end
    assert r["mape"]["touchflow"] < r["mape"]["naive"]
    assert r["mape"]["touchflow"] < r["mape"]["commit"]
    assert 0.5 <= r["interval_coverage"] <= 1.0


def test_touchflow_beats_the_naive_pipeline_monthly(history: dh.DealHistory) -> None:
    r = backtest(
        history.deals,
        history.changes,
        dh.pipeline("month"),
        start=date(2025, 6, 1),
        end=date(2026, 12, 31),
        close_date_changes=history.close_dates,
        draws=DRAWS,
        now=history.as_of,
    ).to_json()
    _print("monthly", r)
    assert len(r["periods"]) == 18
    assert r["mape"]["touchflow"] < r["mape"]["naive"]
    assert r["interval_coverage"] >= 0.4


# --- the demo history itself ----------------------------------------------------


def test_demo_history_is_deterministic_and_realistic(history: dh.DealHistory) -> None:
    again = dh.generate()
    assert again.deals == history.deals and again.changes == history.changes
    assert dh.generate(seed=12).deals != history.deals
    deals = history.deals
    won = [d for d in deals if d.outcome is DealOutcome.WON]
    lost = [d for d in deals if d.outcome is DealOutcome.LOST]
    open_ = [d for d in deals if d.outcome is None]
    assert len(deals) > 1000 and len(won) > 150 and len(lost) > len(won) and len(open_) > 50
    assert min(d.created_at for d in deals).date() < date(2024, 1, 10)
    assert max(d.created_at for d in deals) <= history.as_of
    cycle = statistics.median((d.closed_at - d.created_at).days for d in won)  # type: ignore[operator]
    assert 110 <= cycle <= 215  # four to seven months
    assert {c.stage for c in history.changes} == {*dh.STAGES, dh.WON_STAGE, dh.LOST_STAGE}
    assert {d.currency for d in deals} == {"USD", "EUR"}
    assert len({d.owner_email for d in deals}) == len(dh.REPS)
    # Reps differ: the best closer wins clearly more often than the weakest.
    rates = []
    for email, *_ in dh.REPS:
        mine = [d for d in won + lost if d.owner_email == email]
        rates.append(sum(d.outcome is DealOutcome.WON for d in mine) / len(mine))
    assert max(rates) > 1.5 * min(rates)
    # Regressions (a stage entered after a later one) and slipping close dates happen.
    order = {s: i for i, s in enumerate(dh.STAGES)}
    by_deal: dict[str, list[int]] = {}
    for c in history.changes:
        if c.stage in order:
            by_deal.setdefault(c.deal_id, []).append(order[c.stage])
    regressions = sum(any(b < a for a, b in itertools.pairwise(s)) for s in by_deal.values())
    assert regressions > 30
    pushes: dict[str, int] = {}
    for cd in history.close_dates:
        pushes[cd.deal_id] = pushes.get(cd.deal_id, 0) + 1
    assert sum(n >= 3 for n in pushes.values()) > 100
    # The quarter-end push: more wins in the last week of a quarter than in its first.
    last_week = sum(
        1 for d in won if d.closed_at and d.closed_at.month % 3 == 0 and d.closed_at.day >= 24
    )
    first_week = sum(
        1 for d in won if d.closed_at and d.closed_at.month % 3 == 1 and d.closed_at.day <= 7
    )
    assert last_week > 2 * first_week


def test_demo_csvs_have_the_import_columns(tmp_path: Path, history: dh.DealHistory) -> None:
    deals_csv, stages_csv, dates_csv = dh.write_csvs(tmp_path, history)
    with open(deals_csv, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "deal_id",
        "account_domain",
        "owner_email",
        "amount",
        "currency",
        "created_at",
        "close_date",
        "stage",
        "closed_at",
        "outcome",
    ]
    assert len(rows) == len(history.deals)
    first = history.deals[0]
    row = rows[0]
    assert row["deal_id"] == first.deal_id
    assert float(row["amount"]) == first.amount
    assert datetime.fromisoformat(row["created_at"]) == first.created_at
    assert {r["outcome"] for r in rows} == {"won", "lost", ""}
    assert all(r["stage"] == "closed_won" for r in rows if r["outcome"] == "won")
    with open(stages_csv, encoding="utf-8") as fh:
        stages = list(csv.DictReader(fh))
    assert list(stages[0]) == ["deal_id", "stage", "entered_at"]
    assert len(stages) == len(history.changes)
    with open(dates_csv, encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["deal_id", "close_date", "changed_at"]
