"""`touchflow deals import`, `deals committee` and `snapshot` end to end (CLI runner, SQLite)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from touchflow.entrypoints.cli import app
from touchflow.store.db import make_engine
from touchflow.store.deals import deals_as_of, snapshot, stage_history
from touchflow.store.schema import deal_stage_changes, deals

runner = CliRunner()

HEADER = "deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome\n"  # noqa: E501
DEALS = HEADER + (
    "D-1,acme.example,ana@yourco.com,12000,USD,2027-01-04,2027-03-31,proposal,,\n"
    "D-2,https://www.Globex.example/,ben@yourco.com,8000,eur,2027-01-10T09:00:00Z,2027-02-28,closed_won,2027-02-20T16:00:00Z,won\n"
    "D-3,initech.example,,5000,USD,2027-01-12,,dicsovery,,\n"
    "D-4,initech.example,,lots,USD,2027-01-12,,discovery,,\n"
    "D-1,acme.example,ana@yourco.com,1,USD,2027-01-04,,proposal,,\n"
)
STAGES = (
    "deal_id,stage,entered_at\n"
    "D-1,discovery,2027-01-04T10:00:00Z\n"
    "D-1,demo,2027-01-20T10:00:00Z\n"
    "D-1,proposal,2027-02-03T10:00:00Z\n"
    "D-2,discovery,2027-01-10T09:00:00Z\n"
    "D-2,closed_won,2027-02-20T16:00:00Z\n"
    "D-9,discovery,2027-01-10T09:00:00Z\n"
    "D-1,propsal,2027-02-03T10:00:00Z\n"
)


def _engine(project: Path):  # type: ignore[no-untyped-def]
    return make_engine(f"sqlite:///{project / 'tf.db'}")


def test_import_loads_good_rows_rejects_bad_ones_and_is_idempotent(project: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    (project / "deals.csv").write_text(DEALS)
    (project / "stages.csv").write_text(STAGES)
    args = ["deals", "import", "deals.csv", "--history", "stages.csv", "--now", "2027-03-01T00:00Z"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "deals: 5 read, 2 new, 0 updated, 0 unchanged" in result.stdout
    assert "stage changes: 5 new; 5 rejected (unknown_stage 2, bad_amount 1" in result.stdout
    errors = result.stderr.replace("\n", " ")
    assert "deals.csv:4: unknown stage 'dicsovery' (did you mean 'discovery'?)" in errors
    assert "pipeline.yaml stages: discovery, qualification, demo" in errors
    assert "deals.csv:5: amount 'lots' is not a number" in errors
    assert "deals.csv:6: deal_id 'D-1' is already on line 2" in errors
    assert "stages.csv:7: deal_id 'D-9' is in neither" in errors
    assert "stages.csv:8: unknown stage 'propsal'" in errors
    with open(project / "deals.rejects.csv", newline="") as fh:
        rejected = list(csv.reader(fh))
    assert rejected[0][:3] == ["_line", "_reason", "deal_id"]
    assert [r[0] for r in rejected[1:]] == ["4", "5", "6"]
    assert (project / "stages.rejects.csv").exists()

    engine = _engine(project)
    with engine.connect() as conn:
        rows = {r.deal_id: r for r in conn.execute(select(deals))}
        n_changes = conn.scalar(select(func.count()).select_from(deal_stage_changes))
        history = stage_history(conn)
    assert rows["D-2"].account_domain == "globex.example" and rows["D-2"].currency == "EUR"
    assert rows["D-2"].outcome == "won" and rows["D-2"].forecast_category == "closed"
    assert rows["D-1"].forecast_category == "best_case"
    assert n_changes == 5  # the history; no extra change for the current stages
    assert [c.stage for c in history[("csv", "D-1")]] == ["discovery", "demo", "proposal"]

    again = runner.invoke(app, args)
    assert "2 unchanged" in again.stdout and "stage changes: 0 new" in again.stdout
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deal_stage_changes)) == 5
        known = deals_as_of(conn, datetime(2027, 1, 25, tzinfo=UTC))
    mid_january = {h.deal.deal_id: h.deal for h in known}
    assert mid_january["D-1"].stage == "demo"
    assert mid_january["D-2"].outcome is None and mid_january["D-2"].stage == "discovery"
    engine.dispose()


def test_import_without_a_needed_column_is_one_error(project: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    (project / "deals.csv").write_text("deal_id,amount\nD-1,5\n")
    result = runner.invoke(app, ["deals", "import", "deals.csv"])
    assert result.exit_code == 1
    assert "missing column(s) account_domain" in result.output.replace("\n", " ")


def test_a_broken_pipeline_file_is_reported_by_validate_and_import(project: Path) -> None:
    path = project / "config" / "pipeline.yaml"
    path.write_text(path.read_text().replace("won_stage: closed_won", "won_stage: closed_wn"))
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert "config/pipeline.yaml:" in result.stdout and "did you mean 'closed_won'" in result.stdout
    (project / "deals.csv").write_text(HEADER)
    result = runner.invoke(app, ["deals", "import", "deals.csv"])
    assert result.exit_code == 1 and "pipeline.yaml:" in result.stdout


def test_committee_and_snapshot(project: Path) -> None:
    from touchflow.domain.deals import CommitteeRole, DealContact
    from touchflow.store.deals import upsert_contacts

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    (project / "deals.csv").write_text(
        HEADER
        + "D-1,acme.example,ana@yourco.com,12000,USD,2027-01-04,2027-03-31,proposal,,\n"
        + "D-2,globex.example,ben@yourco.com,8000,USD,2027-01-04,2027-03-31,demo,,\n"
    )
    assert runner.invoke(app, ["deals", "import", "deals.csv"]).exit_code == 0
    engine = _engine(project)
    with engine.begin() as conn:
        upsert_contacts(
            conn,
            "csv",
            [
                DealContact("D-1", "cfo@acme.example", CommitteeRole.ECONOMIC_BUYER, "c1"),
                DealContact("D-1", "rev@acme.example", CommitteeRole.CHAMPION, "c2"),
            ],
        )
    result = runner.invoke(app, ["deals", "committee", "--json", "--now", "2027-02-01T00:00Z"])
    assert result.exit_code == 0, result.output
    found = {d["deal_id"]: d for d in json.loads(result.stdout)["deals"]}
    assert found["D-1"]["coverage"] == round(6 / 9, 4)
    assert found["D-1"]["missing"] == ["technical_evaluator", "end_user"]
    assert found["D-1"]["single_threaded"] is False
    assert found["D-1"]["days_since_economic_buyer_touch"] is None  # never touched
    assert found["D-2"]["coverage"] == 0 and found["D-2"]["single_threaded"] is True
    only = runner.invoke(app, ["deals", "committee", "--account", "www.globex.example", "--json"])
    assert [d["deal_id"] for d in json.loads(only.stdout)["deals"]] == ["D-2"]
    table = runner.invoke(app, ["deals", "committee"], env={"COLUMNS": "200"})
    assert "single-threaded" in table.stdout and "never" in table.stdout

    assert (
        "snapshot 2027-02-01: 2 open deal(s)"
        in runner.invoke(app, ["snapshot", "--date", "2027-02-01"]).stdout
    )
    assert runner.invoke(app, ["snapshot", "--date", "2027-02-01"]).exit_code == 0
    with engine.connect() as conn:
        from datetime import date

        assert len(snapshot(conn, date(2027, 2, 1))) == 2
    assert runner.invoke(app, ["snapshot", "--date", "yesterday"]).exit_code == 2
    engine.dispose()


def test_sync_from_the_fake_crm_and_the_flow_tasks(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deals sync` with TOUCHFLOW_CRM__PROVIDER=fake; the flows' tasks on the same store."""
    from datetime import date, timedelta

    from touchflow import bootstrap
    from touchflow.entrypoints.flows.snapshot_pipeline import snapshot_open_deals
    from touchflow.entrypoints.flows.sync_deals import pull_deals

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    monkeypatch.setenv("TOUCHFLOW_CRM__PROVIDER", "fake")
    bootstrap.fake_crm.cache_clear()
    crm = bootstrap.fake_crm()
    t0 = datetime(2027, 1, 4, 15, tzinfo=UTC)
    crm.add_pipeline_deal("Demo", at=t0, domain="acme.example")  # type: ignore[attr-defined]
    crm.add_pipeline_deal("Lunch", at=t0)  # type: ignore[attr-defined]
    result = runner.invoke(app, ["deals", "sync"])
    assert result.exit_code == 1
    assert "'Lunch' are not mapped" in result.output.replace("\n", " ")
    path = project / "config" / "pipeline.yaml"
    path.write_text(path.read_text().replace("sources:\n", "sources:\n  fake: {Lunch: demo}\n"))
    result = runner.invoke(app, ["deals", "sync"])
    assert result.exit_code == 0, result.output
    assert "fake: deals: 2 new" in result.stdout
    crm.move_deal(deal_id := "o1", "Lunch", at=t0 + timedelta(days=1))  # type: ignore[attr-defined]
    assert pull_deals.fn(t0 + timedelta(days=2)) == {
        "pages": 1, "new": 0, "updated": 0, "stage_changes": 0, "contacts": 0,
    }  # fmt: skip
    engine = _engine(project)
    with engine.connect() as conn:
        history = stage_history(conn)[("fake", deal_id)]
    assert [c.stage for c in history] == ["demo"]  # Demo -> Lunch: both are our demo
    assert snapshot_open_deals.fn(date(2027, 1, 6)) == 2
    engine.dispose()
    bootstrap.fake_crm.cache_clear()
