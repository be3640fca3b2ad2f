"""The real Prefect flow, on Prefect's test harness (costs a few seconds to start)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import select

from tests.support.harness import Harness, make_cadence, prospect
from touchflow.entrypoints.flows.run_cadences import retry_only_retryable, run_cadences
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


def test_a_flow_run_logs_one_summary_line_at_info_and_no_task_chatter(
    harness, enrolled, caplog: pytest.LogCaptureFixture
):
    enrolled(5)
    run_cadences(now=datetime(2026, 11, 30, 15, 0, tzinfo=UTC), batch_size=2)
    flow_lines = [r for r in caplog.records if r.name == "prefect.flow_runs"]
    summaries = [r for r in flow_lines if r.getMessage().startswith("run_cadences: ")]
    assert len(summaries) == 1 and summaries[0].levelno == logging.INFO
    assert re.fullmatch(r"run_cadences: claimed 5, sent 5 in \d+\.\d s", summaries[0].getMessage())
    # Four batch tasks ran: none of them said anything at INFO (pyproject: WARNING).
    assert not [r for r in caplog.records if r.name == "prefect.task_runs"]


def test_a_flow_pointed_at_no_database_fails_at_start_in_one_line(
    harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from touchflow.errors import ConfigError

    missing = tmp_path / "nowhere.db"
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", f"sqlite:///{missing}")
    with pytest.raises(ConfigError) as caught:
        run_cadences(now=datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    assert str(caught.value) == (
        f"touchflow worker refuses to start: TOUCHFLOW_DATABASE_URL=sqlite:///{missing}: "
        f"the SQLite file {missing} does not exist: run `touchflow db upgrade` to create it"
    )
    assert not missing.exists()


def test_local_runs_keep_flow_runs_quiet_and_give_the_level_back(monkeypatch):
    """The demo prints its own report: no three INFO lines per tick on its screen."""
    from touchflow.entrypoints.flows import local
    from touchflow.entrypoints.flows.tasks import FLOW_RUN_LOGGER

    monkeypatch.setattr(local, "RECORDER_DRAIN_S", 0)
    flow_runs = logging.getLogger(FLOW_RUN_LOGGER)
    before = flow_runs.level
    with local.local_prefect():
        assert flow_runs.level == logging.WARNING
    assert flow_runs.level == before


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


def test_retry_condition_retries_a_busy_database_never_a_missing_table():
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def sqlite_error(message: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))

    assert retry_only_retryable(None, None, _State(sqlite_error("database is locked")))
    assert not retry_only_retryable(None, None, _State(sqlite_error("no such table: touches")))


def test_cli_run_ticks_once_without_prefect(harness, enrolled, tmp_path: Path):
    """`touchflow run` calls the tick service the flow calls (the CLI never imports the flows)."""
    from typer.testing import CliRunner

    from touchflow.entrypoints.cli import app

    enrolled(3)
    result = CliRunner().invoke(app, ["run", "--now", "2026-11-30T15:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "sent" in result.stdout and "Traceback" not in result.output
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) == 3


def test_intake_then_sync_crm_through_the_flows(harness, tmp_path: Path, monkeypatch):
    """A messy file in; scored, routed, and pushed to the (in-memory) CRM by the two flows."""
    import shutil

    from tests.conftest import ROOT
    from touchflow.bootstrap import fake_crm
    from touchflow.demo.data import generate_rows, write_csv
    from touchflow.entrypoints.flows.intake import intake
    from touchflow.entrypoints.flows.sync_crm import sync_crm
    from touchflow.store.schema import crm_outbox, prospects

    for d in ("config", "cadences", "templates"):
        shutil.copytree(ROOT / d, tmp_path / d)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    upgrade(make_engine(url))
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", url)
    monkeypatch.setenv("TOUCHFLOW_CRM__PROVIDER", "fake")
    # Titles that fit the bundled ICP, so some leads qualify and get routed.
    rows = generate_rows(120)
    for i, row in enumerate(rows):
        if "@" in row.get("email", "") and i % 3 == 0:
            row["title"] = "VP Sales"
    path = write_csv(tmp_path / "leads.csv", rows)
    at = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    first = intake(str(path), now=at)
    assert first["import"]["new"] > 100 and first["import"]["rejected"] >= 1
    assert first["score"]["scored"] == first["import"]["new"]
    again = intake(str(path), now=at)
    assert (again["import"]["new"], again["import"]["updated"]) == (0, 0)
    assert again["route"]["routed"] == 0  # routed once
    engine = make_engine(url)
    with engine.connect() as conn:
        routed = conn.execute(select(prospects.c.email).where(prospects.c.ae_email.is_not(None)))
        routed = set(routed.scalars())
        queued = set(conn.execute(select(crm_outbox.c.key)).scalars())
    assert routed and routed <= queued
    result = sync_crm(now=at)
    assert result["push"]["pushed"] >= len(routed)
    assert fake_crm().count("person") >= len(routed)


def test_main_on_an_idle_database_does_not_start_prefect(tmp_path, monkeypatch, capsys) -> None:
    """``python -m ...run_cadences`` answers an idle database without the ~10 s server start."""
    from touchflow.entrypoints.flows import run_cadences as module
    from touchflow.store.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'idle.db'}"
    upgrade(make_engine(url))
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", url)
    started: list[object] = []
    monkeypatch.setattr(module, "run_cadences", lambda **kw: started.append(kw))
    module.main()
    assert started == []
    assert "the flow was not started" in capsys.readouterr().out
