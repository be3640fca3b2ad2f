"""The forecast service over the store: the config it builds, and no leakage from the future.

The leakage test loads the demo history into one database, copies what that
store knew at a period's first day (``deals_as_of``, the close dates until
then) into a second one, and checks the period's backtest is the same from
both: nothing after the as-of moment changes it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.conftest import ROOT
from touchflow.demo import deal_history as dh
from touchflow.domain.deals import ForecastCategory
from touchflow.domain.pipeline import Pipeline, load_pipeline
from touchflow.services.deals import import_deals, take_snapshot
from touchflow.services.forecasting import forecast_input, forecast_pipeline, run_backtest
from touchflow.store.db import make_engine
from touchflow.store.deals import (
    add_close_date_changes,
    add_stage_changes,
    close_date_history,
    deals_as_of,
    upsert_deals,
)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return load_pipeline(ROOT / "config" / "pipeline.yaml")


def test_the_config_is_what_the_demo_history_is_made_for(pipeline: Pipeline) -> None:
    pipe, demo = forecast_pipeline(pipeline), dh.pipeline()
    assert pipe.stages == demo.stages
    assert dict(pipe.probabilities) == dict(demo.probabilities)
    assert dict(pipe.categories) == dict(demo.categories)
    assert (pipe.period, pipe.currency) == ("quarter", "USD")
    assert pipe.rates["EUR"] == demo.rates["EUR"]
    assert pipe.category("commit") is ForecastCategory.COMMIT


def _load_demo(engine: Engine, pipeline: Pipeline, folder: Path) -> dh.DealHistory:
    history = dh.generate()
    deals, stages, dates = dh.write_csvs(folder, history)
    summary = import_deals(
        engine, deals, pipeline, history.as_of, history_path=stages, close_dates_path=dates
    )
    assert not summary.rejected
    return history


def test_data_after_the_as_of_does_not_change_the_backtest(
    db: Engine, pipeline: Pipeline, tmp_path: Path, sqlite_template: Path
) -> None:
    history = _load_demo(db, pipeline, tmp_path / "demo")
    start = date(2025, 10, 1)
    cut = datetime(2025, 10, 1, tzinfo=UTC)
    full = run_backtest(db, pipeline, start=start, end=start, now=history.as_of, draws=300)

    # A second store holding only what the first one knew on 1 October 2025.
    then_path = tmp_path / "then.db"
    then_path.write_bytes(sqlite_template.read_bytes())
    then = make_engine(f"sqlite:///{then_path}")
    with db.connect() as conn:
        known = deals_as_of(conn, cut)
        dates = close_date_history(conn, until=cut)
    assert 0 < len(known) < len(history.deals)
    with then.begin() as conn:
        for h in known:
            add_stage_changes(conn, h.deal.source, h.stages)
        upsert_deals(conn, [h.deal for h in known], lambda d: pipeline.category_for(d.stage), cut)
        for (source, _), changes in dates.items():
            add_close_date_changes(conn, source, changes)
    alone = run_backtest(then, pipeline, start=start, end=start, now=history.as_of, draws=300)
    then.dispose()

    (row,) = full.periods
    (only,) = alone.periods
    assert row.period.label == "2025-Q4" and row.actual > 0
    assert (only.expected, only.p10, only.p50, only.p90, only.naive, only.commit) == (
        row.expected, row.p10, row.p50, row.p90, row.naive, row.commit,
    )  # fmt: skip
    assert only.actual == 0  # what was won in the quarter is exactly what was cut away


def test_close_dates_come_from_the_snapshots_too(
    db: Engine, pipeline: Pipeline, tmp_path: Path
) -> None:
    """A deal without recorded close-date changes: each snapshot that shows a new date is one."""
    day = date(2027, 1, 4)
    deals_csv = (
        "deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,"
        "closed_at,outcome\nS1,acme.example,,1000,USD,2027-01-01,2027-02-15,demo,,\n"
    )
    path = tmp_path / "deals.csv"
    path.write_text(deals_csv)
    import_deals(db, path, pipeline, datetime(2027, 1, 1, tzinfo=UTC))
    take_snapshot(db, day)
    take_snapshot(db, day + timedelta(days=1))  # unchanged: adds nothing
    path.write_text(deals_csv.replace("2027-02-15", "2027-03-20"))
    import_deals(db, path, pipeline, datetime(2027, 1, 6, tzinfo=UTC))
    take_snapshot(db, day + timedelta(days=2))

    with db.connect() as conn:
        changes = close_date_history(conn)[("csv", "S1")]
        assert [(c.close_date, c.changed_at) for c in changes] == [
            (date(2027, 2, 15), datetime(2027, 1, 5, tzinfo=UTC)),  # known at the day's end
            (date(2027, 3, 20), datetime(2027, 1, 7, tzinfo=UTC)),
        ]
        before = close_date_history(conn, until=datetime(2027, 1, 6, 23, tzinfo=UTC))
        assert [c.close_date for c in before[("csv", "S1")]] == [date(2027, 2, 15)]
        data = forecast_input(conn, datetime(2027, 1, 6, 23, tzinfo=UTC))
    assert [c.close_date for c in data.close_dates] == [date(2027, 2, 15)]
    assert [d.deal_id for d in data.deals] == ["S1"]
