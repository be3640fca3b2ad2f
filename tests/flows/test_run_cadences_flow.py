"""The real Prefect flow, on Prefect's test harness (costs a few seconds to start)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import select

from flows.run_cadences import retry_only_retryable, run_cadences
from tests.helpers import Harness, make_cadence, prospect
from touchflow.errors import FatalError, RetryableError
from touchflow.store.db import make_engine, upgrade
from touchflow.store.schema import tasks, touches

SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def enrolled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``enrolled(n)``: n prospects enrolled in a SQLite store the flow finds through
    its settings (outbox transport), like a worker configured by environment."""

    def make(n: int):
        url = f"sqlite:///{tmp_path / 'flow.db'}"
        engine = make_engine(url)
        upgrade(engine)
        h = Harness(engine, make_cadence(tmp_path))
        h.add([prospect(f"p{i}@x.example") for i in range(n)], SAT)
        monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", url)
        monkeypatch.setenv("TOUCHFLOW_EMAIL_TRANSPORT", "outbox")
        monkeypatch.setenv("TOUCHFLOW_OUTBOX_DIR", str(tmp_path / "outbox"))
        # 300 an hour staggers to 25 per 5 minutes: every test message in one tick.
        monkeypatch.setenv("TOUCHFLOW_COMPLIANCE__MAILBOX__HOURLY", "300")
        return engine

    return make


def test_flow_tick_sends_to_the_outbox_in_batches(harness, enrolled, tmp_path: Path):
    engine = enrolled(25)

    report = run_cadences(now=datetime(2026, 11, 30, 15, 0, tzinfo=UTC), batch_size=10)
    assert report["sent"] == 25 and report["claimed"] == 25
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) == 25
    again = run_cadences(now=datetime(2026, 11, 30, 15, 0, tzinfo=UTC), batch_size=10)
    assert again["sent"] == 0
    # Two days later the call step creates SDR tasks through the same flow.
    later = run_cadences(now=datetime(2026, 12, 2, 15, 30, tzinfo=UTC), batch_size=10)
    assert later["tasks"] == 25
    with engine.connect() as conn:
        assert len(conn.execute(select(tasks)).all()) == 25
        assert {r.status for r in conn.execute(select(touches))} == {"sent"}


class _State:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self):
        raise self.exc


def test_retry_condition_retries_only_retryable_errors():
    assert retry_only_retryable(
        None, None, _State(RetryableError("x", connector="c", operation="o"))
    )
    assert not retry_only_retryable(
        None, None, _State(FatalError("x", connector="c", operation="o"))
    )
    assert not retry_only_retryable(None, None, _State(ValueError("bug")))


def test_cli_run_is_one_tick_through_the_flow(harness, enrolled, tmp_path: Path):
    from typer.testing import CliRunner

    from touchflow.cli import app

    enrolled(3)
    result = CliRunner().invoke(app, ["run", "--now", "2026-11-30T15:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "sent" in result.stdout and "Traceback" not in result.output
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) == 3
