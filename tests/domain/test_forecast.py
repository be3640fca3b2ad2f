"""The forecast: cut at as_of, the stage model, Monte Carlo, reasons and the JSON shapes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from touchflow.domain.deals import Deal, DealOutcome, ForecastCategory, StageChange
from touchflow.domain.forecasting import (
    STEP_DAYS,
    CloseDateChange,
    ForecastPipeline,
    backtest,
    cut_history,
    estimate,
    forecast,
    forecast_known,
    period_containing,
    periods_from,
    periods_starting_between,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
S = STEP_DAYS  # the model's step, in days
STAGES = ("a", "b")


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def deal(
    deal_id: str,
    created: float,
    *,
    stage: str = "a",
    closed: float | None = None,
    outcome: DealOutcome | None = None,
    amount: float = 1000.0,
    currency: str = "USD",
    close_date: date | None = None,
    owner: str | None = "rep@yourco.com",
) -> Deal:
    return Deal(
        deal_id=deal_id,
        source="csv",
        account_domain="acme.example",
        owner_email=owner,
        amount=amount,
        currency=currency,
        stage=stage,
        created_at=at(created),
        close_date=close_date,
        closed_at=at(closed) if closed is not None else None,
        outcome=outcome,
    )


def pipe(**kw: object) -> ForecastPipeline:
    base: dict[str, object] = {
        "stages": STAGES,
        "probabilities": {"a": 0.2, "b": 0.6},
        "categories": {"a": ForecastCategory.PIPELINE, "b": ForecastCategory.COMMIT},
        "period": "quarter",
        "currency": "USD",
        "rates": {"EUR": 1.5},
    }
    base.update(kw)
    return ForecastPipeline(**base)  # type: ignore[arg-type]


# --- periods ----------------------------------------------------------------


def test_periods_label_and_bounds() -> None:
    q4 = period_containing(date(2026, 11, 17), "quarter")
    assert (q4.label, q4.start, q4.last_day, q4.end) == (
        "2026-Q4",
        date(2026, 10, 1),
        date(2026, 12, 31),
        date(2027, 1, 1),
    )
    dec = period_containing(date(2026, 12, 31), "month")
    assert (dec.label, dec.end) == ("2026-12", date(2027, 1, 1))
    assert [p.label for p in periods_from(date(2026, 12, 2), "quarter", 3)] == [
        "2026-Q4",
        "2027-Q1",
        "2027-Q2",
    ]
    # Periods whose first day is within the range, both ends included.
    assert [
        p.label for p in periods_starting_between(date(2026, 2, 1), date(2026, 7, 1), "quarter")
    ] == [
        "2026-Q2",
        "2026-Q3",
    ]
    with pytest.raises(ValueError, match="month' or 'quarter"):
        period_containing(date(2026, 1, 1), "week")  # type: ignore[arg-type]


# --- the pipeline facts ------------------------------------------------------


def test_pipeline_validates_and_converts() -> None:
    p = pipe()
    assert p.convert(10, "EUR") == 15
    assert p.convert(10, "USD") == 10
    with pytest.raises(ValueError, match="no rate from GBP to USD"):
        p.convert(1, "GBP")
    with pytest.raises(ValueError, match="repeat"):
        pipe(stages=("a", "a"))
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        pipe(probabilities={"a": 1.5})
    with pytest.raises(ValueError, match="period"):
        pipe(period="year")
    assert p.category("unknown") is ForecastCategory.PIPELINE


# --- cut at as_of ------------------------------------------------------------


def test_cut_keeps_only_what_was_known() -> None:
    deals = [
        deal("open", 0, stage="b"),
        deal("later", 30),  # created after the cut
        deal("won-before", 0, stage="closed_won", closed=8, outcome=DealOutcome.WON),
        deal("won-after", 0, stage="closed_won", closed=20, outcome=DealOutcome.WON),
        deal("no-history", 1, stage="b", close_date=date(2026, 3, 1)),
    ]
    changes = [
        StageChange("open", "a", at(0)),
        StageChange("open", "b", at(5)),
        StageChange("open", "a", at(12)),  # a regression after the cut
        StageChange("won-before", "a", at(0)),
        StageChange("won-before", "closed_won", at(8)),
        StageChange("won-after", "a", at(0)),
        StageChange("won-after", "b", at(15)),
        StageChange("won-after", "closed_won", at(20)),
    ]
    dates = [
        CloseDateChange("open", date(2026, 2, 1), at(0)),
        CloseDateChange("open", date(2026, 2, 20), at(3)),
        CloseDateChange("open", date(2026, 3, 20), at(6)),
        CloseDateChange("open", date(2026, 1, 30), at(11)),  # after the cut
    ]
    h = cut_history(deals, changes, at(10), close_date_changes=dates)
    by = {d.deal_id: d for d in h.deals}
    assert set(by) == {"open", "won-before", "won-after", "no-history"}
    assert (by["open"].stage, by["open"].stage_entered_at) == ("b", at(5))
    assert by["open"].close_date == date(2026, 3, 20)
    assert by["open"].close_date_pushes == 2
    assert by["won-before"].outcome is DealOutcome.WON
    assert by["won-before"].closed_at == at(8)
    assert by["won-after"].outcome is None and by["won-after"].closed_at is None
    assert by["won-after"].stage == "a"
    assert by["no-history"].stage == "b" and by["no-history"].close_date == date(2026, 3, 1)
    assert [d.deal_id for d in h.open_deals()] == ["open", "won-after", "no-history"]
    # Naive datetimes are read as UTC.
    naive = cut_history(deals, changes, at(10).replace(tzinfo=None))
    assert naive.as_of == at(10)


# --- the stage model on a hand-made history ------------------------------------


def _two_stage_history(extra_open: int = 0) -> tuple[list[Deal], list[StageChange]]:
    """10 deals: two steps in a, one in b, then 5 won and 5 lost; ``extra_open`` still in a."""
    deals: list[Deal] = []
    changes: list[StageChange] = []
    for i in range(10):
        won = i < 5
        deals.append(
            deal(
                f"d{i}",
                0,
                stage="closed_won" if won else "closed_lost",
                closed=3 * S,
                outcome=DealOutcome.WON if won else DealOutcome.LOST,
            )
        )
        changes += [StageChange(f"d{i}", "a", at(0)), StageChange(f"d{i}", "b", at(2 * S))]
    for i in range(extra_open):
        deals.append(deal(f"o{i}", 80))
        changes.append(StageChange(f"o{i}", "a", at(80)))
    return deals, changes


def test_model_learns_hazards_and_times() -> None:
    deals, changes = _two_stage_history()
    m = estimate(cut_history(deals, changes, at(100)), STAGES, prior=0.0)
    a, b = m.index("a"), m.index("b")
    won, lost = 2, 3
    assert m.hazards[a][0] == (0.0, 0.0, 0.0, 0.0)  # nobody leaves a in the first week
    assert m.hazards[a][1] == (0.0, 1.0, 0.0, 0.0)  # everybody moves to b in the second
    assert m.hazards[b][0][won] == 0.5 and m.hazards[b][0][lost] == 0.5
    assert m.typical_days == (2.0 * S, 1.0 * S) and m.finished_stays == (10, 10)
    eventual = m.eventual_win()
    assert eventual[a][0] == pytest.approx(0.5)
    # a takes two steps, b one: won in the third step or never.
    periods = 1
    assert m.period_probabilities([0, 0], [1.0, 1.0], periods)[a][0] == [0.0]
    assert m.period_probabilities([0, 0, 0], [1.0] * 3, periods)[a][0] == [pytest.approx(0.5)]
    assert m.period_probabilities([0, 0, 1, 1], [1.0] * 4, 2)[a][0] == [0.0, pytest.approx(0.5)]
    # The calendar's pull scales closing (won and lost alike) in its step: a
    # slack month keeps the rest in the stage, for later; the odds stay.
    assert m.period_probabilities([0, 0, 0], [1.0, 1.0, 0.8], periods)[a][0] == [pytest.approx(0.4)]
    assert m.period_probabilities([0, 0, 0, 0], [1.0, 1.0, 0.8, 1.0], periods)[a][0] == [
        pytest.approx(0.5)
    ]
    # It never closes more than the stay allows.
    assert m.period_probabilities([0, 0, 0], [1.0, 1.0, 1.5], periods)[a][0] == [pytest.approx(0.5)]


def test_model_counts_running_stays_and_shrinks() -> None:
    deals, changes = _two_stage_history(extra_open=10)
    # The 10 open deals have been in a for 4 steps' worth of days at the cut:
    # they came through buckets 0, 1 and 2 (the one they are in does not count).
    h = cut_history(deals, changes, at(80 + 4 * S))
    m = estimate(h, STAGES, prior=0.0)
    assert m.hazards[0][1][1] == pytest.approx(10 / 20)
    assert m.hazards[0][0][1] == 0.0
    assert m.hazards[0][2][1] == 0.0
    shrunk = estimate(h, STAGES, prior=20.0)
    pooled = 10 / 50  # 10 exits over 2 x 10 + 3 x 10 steps of exposure in a
    assert shrunk.hazards[0][0][1] == pytest.approx((0 + 20 * pooled) / (20 + 20))
    assert shrunk.hazards[0][1][1] == pytest.approx((10 + 20 * pooled) / (20 + 20))
    assert shrunk.hazards[0][2][1] == pytest.approx((0 + 20 * pooled) / (10 + 20))
    # Bucket 3 of a has no exposure at all: it falls back on the stage's pooled rate.
    assert shrunk.hazards[0][3][1] == pytest.approx(pooled)
    # A stage never seen falls back on the rates pooled over every stage.
    blank = estimate(cut_history([], [], at(0)), STAGES, prior=20.0)
    assert blank.hazards[0][0] == (0.0, 0.0, 0.0, 0.0)


# --- the forecast ---------------------------------------------------------------


def _live() -> tuple[list[Deal], list[StageChange], list[CloseDateChange]]:
    deals, changes = _two_stage_history()
    deals = [
        *deals,
        deal("late", 60, amount=2000.0, currency="EUR", close_date=date(2026, 3, 1)),
        deal("fresh", 88, stage="b", amount=500.0, close_date=date(2026, 4, 20)),
    ]
    changes += [
        StageChange("late", "a", at(60)),
        StageChange("fresh", "a", at(80)),
        StageChange("fresh", "b", at(89)),
    ]
    dates = [
        CloseDateChange("late", date(2026, 3, 10), at(60)),
        CloseDateChange("late", date(2026, 3, 25), at(70)),
        CloseDateChange("late", date(2026, 3, 31), at(85)),
    ]
    return deals, changes, dates


def test_forecast_is_deterministic_and_consistent() -> None:
    deals, changes, dates = _live()
    as_of = at(90)  # 2026-04-05
    f1 = forecast(
        deals, changes, as_of, pipe(), periods=2, close_date_changes=dates, draws=400, seed=3
    )
    f2 = forecast(
        deals, changes, as_of, pipe(), periods=2, close_date_changes=dates, draws=400, seed=3
    )
    assert f1 == f2
    f3 = forecast(
        deals, changes, as_of, pipe(), periods=2, close_date_changes=dates, draws=400, seed=4
    )
    assert [p.period.label for p in f1.periods] == ["2026-Q2", "2026-Q3"]
    for p in f1.periods:
        assert p.p10 <= p.p50 <= p.p90
    q2 = f1.periods[0]
    # 'fresh' (b, 1 day in) wins in its next step half the time; 'late' (a, 30
    # days in, longer than any past stay) moves on at a's pooled rate, then wins
    # half the time: nearly all of it within the quarter.
    by = {d.deal_id: d for d in f1.deals}
    assert by["fresh"].probabilities[0] == pytest.approx(0.5)
    assert by["late"].amount == 3000.0
    assert by["late"].win_probability == pytest.approx(0.5)
    assert 0.45 < by["late"].probabilities[0] < 0.5
    assert by["late"].probabilities[0] + by["late"].probabilities[1] == pytest.approx(0.5, abs=1e-3)
    # Naive: amount x book probability for deals whose close date is in the period;
    # 'late' is overdue (close date 2026-03-31) and counts in the first period.
    assert q2.weighted_pipeline == pytest.approx(3000 * 0.2 + 500 * 0.6)
    assert q2.commit == pytest.approx(500.0)  # only 'fresh' is in a commit stage
    assert q2.best_case == pytest.approx(500.0)
    assert q2.won_to_date == 0.0
    # The Monte Carlo agrees with the analytic expectation (no new deals: no history for them).
    assert q2.from_new_deals == 0.0
    assert q2.expected == pytest.approx(by["late"].probabilities[0] * 3000 + 0.5 * 500)
    draws_mean = q2.expected  # the draws' mean is near it
    assert abs(draws_mean - 1750) < 100
    assert {q2.p10, q2.p50, q2.p90} <= {0.0, 500.0, 3000.0, 3500.0}
    assert (f3.periods[0].p10, f3.periods[0].p90) == (0.0, 3500.0) or f3 != f1


def test_reasons_say_why() -> None:
    deals, changes, dates = _live()
    f = forecast(deals, changes, at(90), pipe(), close_date_changes=dates, draws=50)
    late = next(d for d in f.deals if d.deal_id == "late")
    assert late.close_date_pushes == 2
    assert late.days_in_stage == 30 and late.typical_days_in_stage == 2.0 * S
    assert late.days_to_close_date == -5
    text = " | ".join(late.reasons)
    assert "a (pipeline): 50% chance of being won from here" in text
    # a's stays: ten of 2 steps and fresh's 9 days.
    ratio = 30 / (2 * S)
    assert f"30 days in a, typical {2 * S} (median of 11 past stays): stalled, {ratio:.1f}x" in text
    assert "close date pushed 2 times" in text
    assert "close date 2026-03-31 passed 5 days ago" in text
    assert "owner rep@yourco.com won 50% (5/10) of closed deals (team 50% (5/10))" in text
    fresh = next(d for d in f.deals if d.deal_id == "fresh")
    assert f"1 day in b, typical {S} (median of 10 past stays): on pace" in fresh.reasons


def test_won_to_date_and_new_deals() -> None:
    # A steady history: every month two deals are created and won in the same quarter.
    deals: list[Deal] = []
    changes: list[StageChange] = []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(48):
        created = start + timedelta(days=15 * i)
        deals.append(
            Deal(
                deal_id=f"n{i}",
                source="csv",
                account_domain=None,
                owner_email=None,
                amount=100.0,
                currency="USD",
                stage="closed_won",
                created_at=created,
                close_date=None,
                closed_at=created + timedelta(days=3),
                outcome=DealOutcome.WON,
            )
        )
        changes.append(StageChange(f"n{i}", "b", created))
    as_of = datetime(2025, 11, 16, tzinfo=UTC)
    f = forecast(deals, changes, as_of, pipe(), periods=2, draws=300)
    q4, q1 = f.periods
    won_by_then = [d for d in deals if d.closed_at and q4.period.start_at <= d.closed_at <= as_of]
    assert len(won_by_then) == 3
    assert q4.won_to_date == 300.0
    # Created-and-won-in-quarter runs at 6 a quarter; half of Q4 is left (x 1/2 x 1/2).
    assert q4.from_new_deals == pytest.approx(100.0 * 6 * 0.5 * 0.5, rel=0.2)
    assert q1.from_new_deals == pytest.approx(100.0 * 6, rel=0.2)
    assert q4.p90 >= q4.won_to_date


def test_forecast_json_shape() -> None:
    deals, changes, dates = _live()
    j = forecast(deals, changes, at(90), pipe(), close_date_changes=dates, draws=50).to_json()
    assert set(j) == {"as_of", "currency", "period", "draws", "periods", "deals"}
    assert set(j["periods"][0]) >= {
        "period",
        "start",
        "end",
        "won_to_date",
        "expected",
        "p10",
        "p50",
        "p90",
        "weighted_pipeline",
        "commit",
        "best_case",
    }
    assert j["periods"][0]["start"] == "2026-04-01" and j["periods"][0]["end"] == "2026-06-30"
    d = j["deals"][0]
    assert set(d["probabilities"]) == {"2026-Q2", "2026-Q3"}
    assert isinstance(d["reasons"], list) and d["reasons"]


def test_backtest_json_shape_and_scores() -> None:
    deals, changes, dates = _live()
    r = backtest(
        deals,
        changes,
        pipe(period="month"),
        start=date(2026, 1, 1),
        end=date(2026, 2, 1),
        close_date_changes=dates,
        draws=100,
    )
    j = r.to_json()
    assert set(j) == {"periods", "mape", "bias", "interval_coverage"}
    assert set(j["mape"]) == set(j["bias"]) == {"touchflow", "naive", "commit"}
    p = j["periods"][0]
    assert set(p) == {"period", "start", "end", "actual", "touchflow", "naive", "commit"}
    assert set(p["touchflow"]) == {"expected", "p10", "p50", "p90"}
    assert [x["period"] for x in j["periods"]] == ["2026-01", "2026-02"]
    # January: the 5 wins of 1000 (closed 2026-01-26).
    assert p["actual"] == 5000.0
    jan = r.periods[0]
    assert r.mape("naive") == pytest.approx(
        100 * abs(jan.naive - 5000) / 5000 if r.periods[1].actual == 0 else r.mape("naive")
    )
    assert r.bias("commit") == pytest.approx(-100.0)  # nothing was in commit: -100%
    with pytest.raises(ValueError):
        forecast_known(cut_history(deals, changes, at(1)), pipe(), periods=0)
