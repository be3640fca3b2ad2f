"""The funnel's opportunity and won stages from deals, through the public commands.

Four prospects at four accounts are enrolled and contacted (the intro at the
14:30 tick on 4 Jan 2027). Deals are imported with `deals import`: acme's
and globex's created after that contact (opportunities), initech's created
before it (not outreach's: no opportunity, though it is won), wonka's created
after and won. A second import wins acme's deal: the next report shows it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from touchflow.domain.compliance import CapPolicy
from touchflow.entrypoints.cli import app
from touchflow.services.reporting import ReportContext, ReportQuery, run_report
from touchflow.store.db import make_engine
from touchflow.store.schema import prospects, score_history

runner = CliRunner()
HEADER = "deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome\n"  # noqa: E501
DEALS = HEADER + (
    "D1,acme.example,ana.souza@yourco.com,100000,USD,2027-01-05,2027-03-20,proposal,,\n"
    "D2,globex.example,ana.souza@yourco.com,50000,USD,2027-01-06T06:00:00Z,,demo,,\n"
    "D3,initech.example,ben.carter@yourco.com,40000,USD,2026-11-02,,closed_won,2027-02-01T15:00:00Z,won\n"
    "D8,wonka.example,ben.carter@yourco.com,9000,USD,2027-01-08,,closed_won,2027-02-05T12:00:00Z,won\n"
)
PEOPLE = ["vera@acme.example", "gail@globex.example", "ivan@initech.example", "wendy@wonka.example"]
PROSPECTS = "email,first_name,last_name,title,company,domain,country,timezone\n" + "".join(
    f"{e},N{i},L{i},Office Manager,Co{i},{e.split('@')[1]},US,America/New_York\n"
    for i, e in enumerate(PEOPLE)
)
CONTACT = datetime(2027, 1, 4, 14, 30, tzinfo=UTC)
EO = "enterprise-outbound"


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


def funnel() -> dict[tuple[str, str], dict[str, Any]]:
    rows = json.loads(cli("report", "funnel", "--json"))["rows"]
    return {(r["cadence"], r["stage"]): r for r in rows}


def hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 3600


def test_opportunity_and_won_from_deals(
    project: Path, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", migrated_db_url)
    Path("prospects.csv").write_text(PROSPECTS)
    cli("import", "prospects.csv")
    cli("enroll", EO, "--all", "--owner", "sam@yourco.com", "--now", "2027-01-04T14:00:00Z")
    cli("run", "--now", "2027-01-04T14:30:00Z")
    before = funnel()
    assert before[(EO, "contacted")]["count"] == 4
    assert before[(EO, "opportunity")]["count"] == 0 and before[(EO, "won")]["count"] == 0

    Path("deals.csv").write_text(DEALS)
    cli("deals", "import", "deals.csv", "--now", "2027-02-10T00:00:00Z")
    engine = make_engine(migrated_db_url)
    with engine.connect() as conn:
        sql_at = {
            email: at
            for email, at in conn.execute(
                select(prospects.c.email, score_history.c.scored_at)
                .join(score_history, score_history.c.prospect_id == prospects.c.id)
                .where(score_history.c.lifecycle == "sql")
            )
        }
    opened = {  # opportunity: the deal's creation, on or after the first contact
        "vera@acme.example": datetime(2027, 1, 5, tzinfo=UTC),
        "gail@globex.example": datetime(2027, 1, 6, 6, tzinfo=UTC),
        "wendy@wonka.example": datetime(2027, 1, 8, tzinfo=UTC),
    }
    won = {"wendy@wonka.example": datetime(2027, 2, 5, 12, tzinfo=UTC)}

    def expect_median_opportunity() -> float:
        # from SQL (the previous stage); without an SQL the opportunity passes through it.
        gaps = sorted(
            max(hours(max(sql_at[e], CONTACT), at), 0.0) if e in sql_at else 0.0
            for e, at in opened.items()
        )
        mid = len(gaps) // 2
        return gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2

    got = funnel()
    for key in ((EO, "opportunity"), ("(all)", "opportunity")):
        assert got[key]["count"] == 3
        assert got[key]["median_hours_from_previous"] == pytest.approx(
            expect_median_opportunity(), abs=1e-3
        )
    assert got[(EO, "won")]["count"] == 1
    assert got[(EO, "won")]["conversion"] == pytest.approx(1 / 3, abs=1e-6)
    assert got[(EO, "won")]["median_hours_from_previous"] == pytest.approx(
        hours(opened["wendy@wonka.example"], won["wendy@wonka.example"]), abs=1e-3
    )
    # Every stage before is reached too: an SQL count includes the opportunities.
    assert got[(EO, "sql")]["count"] >= 3

    # acme's deal is won later: the next report has it (the stage change is folded).
    Path("deals.csv").write_text(
        HEADER + "D1,acme.example,ana.souza@yourco.com,100000,USD,2027-01-05,2027-03-20,"
        "closed_won,2027-03-01T10:00:00Z,won\n"
    )
    cli("deals", "import", "deals.csv", "--now", "2027-03-02T00:00:00Z")
    won["vera@acme.example"] = datetime(2027, 3, 1, 10, tzinfo=UTC)
    got = funnel()
    assert got[(EO, "won")]["count"] == 2 and got[(EO, "opportunity")]["count"] == 3
    assert got[(EO, "won")]["median_hours_from_previous"] == pytest.approx(
        sum(hours(opened[e], w) for e, w in won.items()) / 2, abs=1e-3
    )
    # The rollups equal the same funnel computed from the ledger and the deals.
    at = datetime(2027, 3, 2, tzinfo=UTC)
    fast = run_report(engine, "funnel", ReportQuery(), ReportContext(now=at, caps=CapPolicy()))
    slow = run_report(
        engine, "funnel", ReportQuery(), ReportContext(now=at, caps=CapPolicy(), source="ledger")
    )
    assert fast.rows == slow.rows
    engine.dispose()
