"""The dashboard's forecast, stored: shared by processes, invalidated by deal changes,
served stale while the next one computes, computed once per key."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import ROOT
from touchflow.domain.pipeline import Pipeline, load_pipeline
from touchflow.services import forecasting
from touchflow.services.deals import import_deals
from touchflow.store import forecasts as stored
from touchflow.store.db import make_engine

NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
DEALS = """\
deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome
D1,acme.example,ana@x.example,50000,USD,2026-10-01T10:00:00Z,2027-01-31,demo,,
D2,globex.example,ben@x.example,80000,USD,2026-10-05T10:00:00Z,2027-02-28,proposal,,
"""
MORE = """\
deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome
D3,initech.example,ana@x.example,20000,USD,2026-11-02T10:00:00Z,2027-01-15,discovery,,
"""


@pytest.fixture
def pipeline() -> Pipeline:
    return load_pipeline(ROOT / "config" / "pipeline.yaml")


def _import(db: Engine, tmp_path: Path, text: str, pipeline: Pipeline) -> None:
    path = tmp_path / f"deals-{abs(hash(text))}.csv"
    path.write_text(text)
    import_deals(db, path, pipeline, NOW)


def _second_engine(db: Engine) -> Engine:
    """Another process's engine on the same database."""
    return make_engine(db.url.render_as_string(hide_password=False))


def test_a_stored_forecast_is_reused_by_another_process(
    db: Engine, tmp_path: Path, pipeline: Pipeline
) -> None:
    _import(db, tmp_path, DEALS, pipeline)
    assert forecasting.refresh_stored_forecast(db, pipeline, NOW) is True
    other = _second_engine(db)
    try:
        assert forecasting.refresh_stored_forecast(other, pipeline, NOW) is False  # stored
        with other.connect() as conn:
            got = forecasting.dashboard_forecast(conn, pipeline, None, NOW, wait=0)
    finally:
        other.dispose()
    assert got["forecast_status"]["state"] == "fresh"
    assert got["forecast_status"]["as_of"] == NOW.isoformat()
    assert sorted(d["deal_id"] for d in got["forecast"]["deals"]) == ["D1", "D2"]


@pytest.fixture
def slow_compute(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The computation held until the test lets it go, counting its calls."""
    real = forecasting.compute_dashboard_forecast
    state: dict[str, Any] = {"calls": 0, "go": threading.Event()}

    def held(*args: Any, **kw: Any) -> dict[str, Any]:
        state["calls"] += 1
        assert state["go"].wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(forecasting, "compute_dashboard_forecast", held)
    return state


def _wait_done(db: Engine, pipeline: Pipeline, now: datetime, owners: Any = None) -> dict[str, Any]:
    """The view after the background computations of this process are over."""
    for running in list(forecasting._RUNNING.values()):
        assert running.done.wait(60)
    with db.connect() as conn:
        return forecasting.dashboard_forecast(conn, pipeline, owners, now, wait=0)


def test_a_deal_change_makes_the_stored_forecast_stale_and_one_computation_runs(
    db: Engine, tmp_path: Path, pipeline: Pipeline, slow_compute: dict[str, Any]
) -> None:
    if db.dialect.name == "sqlite":
        pytest.skip("on SQLite the page computes in its own transaction (docs/forecast.md)")
    _import(db, tmp_path, DEALS, pipeline)
    slow_compute["go"].set()
    assert forecasting.refresh_stored_forecast(db, pipeline, NOW) is True
    slow_compute["go"].clear()
    _import(db, tmp_path, MORE, pipeline)  # a deal change: a new key

    other = _second_engine(db)
    try:
        seen = []
        for engine in (db, other, db):  # three views, two processes, while it computes
            with engine.connect() as conn:
                seen.append(forecasting.dashboard_forecast(conn, pipeline, None, NOW, wait=0))
        for got in seen:
            status = got["forecast_status"]
            assert status["state"] == "stale"
            assert status["as_of"] == NOW.isoformat() and status["computed_at"]
            assert "deals changed" in status["reason"]
            assert sorted(d["deal_id"] for d in got["forecast"]["deals"]) == ["D1", "D2"]
        assert slow_compute["calls"] == 2  # the stored one, then one for the new key
        slow_compute["go"].set()
        done = _wait_done(db, pipeline, NOW)
    finally:
        other.dispose()
    assert done["forecast_status"]["state"] == "fresh"
    assert sorted(d["deal_id"] for d in done["forecast"]["deals"]) == ["D1", "D2", "D3"]
    assert slow_compute["calls"] == 2


def test_nothing_stored_yet_says_computing(
    db: Engine, tmp_path: Path, pipeline: Pipeline, slow_compute: dict[str, Any]
) -> None:
    if db.dialect.name == "sqlite":
        pytest.skip("on SQLite the page computes in its own transaction (docs/forecast.md)")
    _import(db, tmp_path, DEALS, pipeline)
    with db.connect() as conn:
        got = forecasting.dashboard_forecast(conn, pipeline, frozenset({"ana@x.example"}), NOW,
                                             wait=0)  # fmt: skip
    assert got["forecast"] is None and got["forecast_status"]["state"] == "computing"
    slow_compute["go"].set()
    got = _wait_done(db, pipeline, NOW, frozenset({"ana@x.example"}))
    assert got["forecast_status"]["state"] == "fresh"
    assert [d["deal_id"] for d in got["forecast"]["deals"]] == ["D1"]  # ana's only
    assert slow_compute["calls"] == 1


def test_a_claim_is_taken_once_and_taken_over_when_its_process_died(db: Engine) -> None:
    key = stored.ForecastKey("all", "s", NOW.date(), "v1")
    after = timedelta(minutes=15)
    with db.begin() as conn:
        assert stored.claim(conn, key, NOW, after) is True
    other = _second_engine(db)
    try:
        with other.begin() as conn:
            assert stored.claim(conn, key, NOW + timedelta(minutes=1), after) is False
        with other.begin() as conn:
            assert stored.claim(conn, key, NOW + timedelta(minutes=16), after) is True
    finally:
        other.dispose()
    with db.begin() as conn:
        stored.store_result(conn, key, NOW, NOW, {"forecast": None})
        assert stored.claim(conn, key, NOW + timedelta(hours=1), after) is False  # done
        assert stored.fresh_result(conn, key) is not None
