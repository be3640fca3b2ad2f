"""`touchflow report pipeline`: a known set of deals through `deals import`, every figure by hand.

Quotas are the bundled config/team.yaml's (Ana 300,000 USD a quarter; Ben
200,000 USD for 2027-Q1, else 250,000; Dieter 220,000 EUR a quarter), rates
pipeline.yaml's (EUR 1.08, GBP 1.27). One prospect at acme.example, a VP of
Sales, is touched by a cadence: the economic buyer on acme's deal (weight 3 of
3 + 3 + 2 + 1), alone on it (single-threaded below 2 people).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from touchflow.entrypoints.cli import app

runner = CliRunner()
ANA, BEN, DIETER = "ana.souza@yourco.com", "ben.carter@yourco.com", "dieter.braun@yourco.com"
DEALS = (
    "deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome\n"
    f"D1,acme.example,{ANA},100000,USD,2027-01-05,2027-03-20,proposal,,\n"
    f"D2,globex.example,{ANA},50000,EUR,2027-01-06,2027-05-10,negotiation,,\n"
    f"D3,initech.example,{ANA},40000,USD,2026-11-02,2027-02-01,closed_won,2027-02-01T15:00:00Z,won\n"
    f"D4,umbrella.example,{BEN},20000,GBP,2027-01-10,2027-03-01,discovery,,\n"
    f"D5,hooli.example,{BEN},30000,USD,2027-01-11,2027-02-01,closed_lost,2027-02-02T10:00:00Z,lost\n"
    f"D6,stark.example,{DIETER},10000,USD,2027-01-12,2027-02-28,demo,,\n"
    "D7,wayne.example,,5000,USD,2027-01-13,,qualification,,\n"
)
PROSPECTS = (
    "email,first_name,last_name,title,company,domain,country,timezone\n"
    "vera@acme.example,Vera,V,VP Sales,Acme,acme.example,US,America/New_York\n"
)
NOW = "2027-02-15T12:00:00Z"


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


def report(*extra: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = json.loads(cli("report", "pipeline", "--json", "--now", NOW, *extra))["rows"]
    got = {(r["owner"], r["stage"], r["category"]): r for r in rows}
    assert len(got) == len(rows)
    return got


@pytest.fixture
def deals_loaded(project: Path, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", migrated_db_url)
    Path("prospects.csv").write_text(PROSPECTS)
    cli("import", "prospects.csv")
    cli("enroll", "enterprise-outbound", "--all", "--owner", "sam@yourco.com",
        "--now", "2027-01-04T14:00:00Z")  # fmt: skip
    cli("run", "--now", "2027-01-04T14:30:00Z")
    Path("deals.csv").write_text(DEALS)
    cli("deals", "import", "deals.csv", "--now", NOW)


def check(row: dict[str, Any], **want: Any) -> None:
    for k, v in want.items():
        if isinstance(v, float):
            assert row[k] == pytest.approx(v, abs=1e-4), (k, row)
        else:
            assert row[k] == v, (k, row)


def test_pipeline_by_stage_category_quota_and_committee(deals_loaded: None) -> None:
    got = report()
    all_ = "(all)"
    eb = 3 / 9  # acme's committee: the economic buyer only
    # Ana: proposal 100,000 (0.60), negotiation 50,000 EUR = 54,000 USD (0.80); D3 won in Q1.
    check(got[(ANA, "proposal", "best_case")], deals=1, amount=100000.0, weighted=60000.0,
          committee_coverage=round(eb, 4), single_threaded=1, quota=None)  # fmt: skip
    check(got[(ANA, "negotiation", "commit")], deals=1, amount=54000.0, weighted=43200.0,
          committee_coverage=0.0, single_threaded=1)  # fmt: skip
    check(got[(ANA, all_, "best_case")], deals=1, amount=100000.0, weighted=60000.0)
    check(got[(ANA, all_, "commit")], deals=1, amount=54000.0, weighted=43200.0)
    check(got[(ANA, all_, all_)], deals=2, amount=154000.0, weighted=103200.0,
          committee_coverage=round(eb / 2, 4), single_threaded=2, period="2027-Q1",
          quota=300000.0, won=40000.0, closing_in_period=100000.0,
          coverage=round(100000 / 260000, 4))  # fmt: skip
    # Ben: discovery 20,000 GBP = 25,400 USD (0.10); D5 lost counts nowhere; Q1's own quota.
    check(got[(BEN, "discovery", "pipeline")], deals=1, amount=25400.0, weighted=2540.0)
    check(got[(BEN, all_, all_)], deals=1, period="2027-Q1", quota=200000.0, won=0.0,
          closing_in_period=25400.0, coverage=0.127)  # fmt: skip
    # Dieter: demo 10,000 USD (0.40); his quota is in EUR: 220,000 x 1.08.
    check(got[(DIETER, all_, all_)], deals=1, amount=10000.0, weighted=4000.0,
          quota=237600.0, closing_in_period=10000.0, coverage=round(10000 / 237600, 4))  # fmt: skip
    # No owner: no quota.
    check(got[("(none)", "qualification", "pipeline")], deals=1, amount=5000.0, weighted=1000.0)
    check(got[("(none)", all_, all_)], quota=None, coverage=None)
    # Everyone: the stages in pipeline.yaml's order, then categories, then the total.
    stages = [k[1] for k in got if k[0] == all_ and k[1] != all_]
    assert stages == ["discovery", "qualification", "demo", "proposal", "negotiation"]
    check(got[(all_, all_, "pipeline")], deals=2, amount=30400.0, weighted=3540.0)
    check(got[(all_, all_, "best_case")], deals=2, amount=110000.0, weighted=64000.0)
    check(got[(all_, all_, "commit")], deals=1, amount=54000.0, weighted=43200.0)
    check(got[(all_, all_, all_)], deals=5, amount=194400.0, weighted=110740.0,
          single_threaded=5, committee_coverage=round(eb / 5, 4), period="2027-Q1",
          quota=737600.0, won=40000.0, closing_in_period=135400.0,
          coverage=round(135400 / 697600, 4))  # fmt: skip
    # Members with neither deals nor a quota have no rows.
    assert not any(k[0] == "carla.diaz@yourco.com" for k in got)


def test_pipeline_filters_owner_and_quota_period(deals_loaded: None) -> None:
    mine = report("--owner", ANA)
    assert {k[0] for k in mine} == {ANA}
    check(mine[(ANA, "(all)", "(all)")], deals=2, amount=154000.0, quota=300000.0, won=40000.0)
    # --from picks the period: 2026-Q4, where Ben has the recurring 250,000 and nothing closes.
    q4 = report("--from", "2026-12-01")
    check(q4[(ANA, "(all)", "(all)")], period="2026-Q4", quota=300000.0, won=0.0,
          closing_in_period=0.0, coverage=0.0)  # fmt: skip
    check(q4[(BEN, "(all)", "(all)")], period="2026-Q4", quota=250000.0)
    table = cli("report", "pipeline", "--now", NOW)
    assert "Pipeline (open deals), USD" in table and "negotiation" in table
    csv_out = cli("report", "pipeline", "--csv", "--now", NOW).splitlines()
    assert csv_out[0] == (
        "owner,stage,category,deals,amount,weighted,committee_coverage,single_threaded,"
        "period,quota,won,closing_in_period,coverage"
    )
