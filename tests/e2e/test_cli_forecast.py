"""`touchflow forecast` and `touchflow forecast --backtest` end to end (CLI runner, both backends).

A small history whose CRM figures are worked out by hand below, then the
bundled demo history, where touchflow's MAPE must beat the naive method's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from touchflow.entrypoints.cli import app

runner = CliRunner()

# Quarters; USD reporting, EUR at 1.08 (config/pipeline.yaml). Book probabilities:
# discovery 0.1, qualification 0.2, demo 0.4, proposal 0.6, negotiation 0.8, commit 0.9.
DEALS = """deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome
W1,acme.example,ana.souza@yourco.com,10000,USD,2026-12-01T09:00:00Z,2027-01-20,closed_won,2027-01-20T12:00:00Z,won
W2,globex.example,ben.carter@yourco.com,5000,EUR,2026-12-05T09:00:00Z,2027-02-10,closed_won,2027-02-10T12:00:00Z,won
W3,initech.example,ana.souza@yourco.com,7000,USD,2026-12-10T09:00:00Z,2027-02-20,closed_won,2027-02-20T12:00:00Z,won
L1,umbrella.example,ben.carter@yourco.com,30000,USD,2026-12-02T09:00:00Z,2027-01-25,closed_lost,2027-01-25T12:00:00Z,lost
O1,hooli.example,ana.souza@yourco.com,20000,USD,2026-12-15T09:00:00Z,2027-04-15,proposal,,
O2,stark.example,ben.carter@yourco.com,10000,EUR,2027-01-05T09:00:00Z,2027-01-31,negotiation,,
O3,wayne.example,ana.souza@yourco.com,50000,USD,2027-01-10T09:00:00Z,2027-05-10,discovery,,
O4,wonka.example,ben.carter@yourco.com,8000,USD,2027-02-01T09:00:00Z,,qualification,,
"""  # noqa: E501
STAGES = """deal_id,stage,entered_at
W1,discovery,2026-12-01T09:00:00Z
W1,negotiation,2026-12-20T09:00:00Z
W1,closed_won,2027-01-20T12:00:00Z
W2,demo,2026-12-05T09:00:00Z
W2,closed_won,2027-02-10T12:00:00Z
W3,proposal,2026-12-10T09:00:00Z
W3,commit,2027-02-01T09:00:00Z
W3,closed_won,2027-02-20T12:00:00Z
L1,discovery,2026-12-02T09:00:00Z
L1,closed_lost,2027-01-25T12:00:00Z
O1,qualification,2026-12-15T09:00:00Z
O1,proposal,2027-01-10T09:00:00Z
O2,negotiation,2027-01-05T09:00:00Z
O3,discovery,2027-01-10T09:00:00Z
O4,qualification,2027-02-01T09:00:00Z
"""
# The close date each deal had, and when it was set: what the naive and commit figures
# of a past day must use (the record holds only the latest).
CLOSE_DATES = """deal_id,close_date,changed_at
W1,2027-01-15,2026-12-01T09:00:00Z
W1,2027-01-20,2027-01-20T12:00:00Z
W2,2027-03-10,2026-12-05T09:00:00Z
W2,2027-02-10,2027-02-10T12:00:00Z
W3,2027-04-30,2026-12-10T09:00:00Z
W3,2027-02-25,2027-02-01T09:00:00Z
W3,2027-02-20,2027-02-20T12:00:00Z
L1,2027-02-28,2026-12-02T09:00:00Z
O1,2027-01-31,2026-12-15T09:00:00Z
O1,2027-03-15,2027-02-01T09:00:00Z
O1,2027-04-15,2027-02-20T09:00:00Z
O2,2027-01-31,2027-01-05T09:00:00Z
O3,2027-05-10,2027-01-10T09:00:00Z
X9,2027-05-10,2027-01-10T09:00:00Z
O3,2027-13-10,2027-01-10T09:00:00Z
"""


@pytest.fixture
def loaded(project: Path, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small history imported through `touchflow deals import`, on each backend."""
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", migrated_db_url)
    (project / "deals.csv").write_text(DEALS)
    (project / "stages.csv").write_text(STAGES)
    (project / "close_dates.csv").write_text(CLOSE_DATES)
    result = runner.invoke(
        app,
        ["deals", "import", "deals.csv", "--history", "stages.csv",
         "--close-dates", "close_dates.csv", "--now", "2027-03-01T00:00:00Z"],
    )  # fmt: skip
    # Two bad close-date rows: an unknown deal and a month 13; the rest load.
    assert result.exit_code == 1, result.output
    assert "deals: 8 read, 8 new" in result.stdout
    assert "close-date changes: 13 new; 2 rejected (unknown_deal 1, bad_date 1)" in result.stdout
    errors = result.stderr.replace("\n", " ")
    assert "close_dates.csv:15: deal_id 'X9' is in neither" in errors
    assert "close_dates.csv:16: close_date '2027-13-10' is not a date" in errors
    assert (project / "close_dates.rejects.csv").exists()
    again = runner.invoke(app, ["deals", "import", "deals.csv", "--close-dates", "close_dates.csv"])
    assert "8 unchanged" in again.stdout and "close-date changes: 0 new" in again.stdout
    return project


def _json(args: list[str]) -> Any:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_forecast_figures_worked_out_by_hand(loaded: Path) -> None:
    f = _json(["forecast", "--as-of", "2027-02-15", "--draws", "300", "--json"])
    assert f["as_of"].startswith("2027-02-15T00:00:00") and f["currency"] == "USD"
    q1, q2 = f["periods"]
    assert (q1["period"], q1["start"], q1["end"]) == ("2027-Q1", "2027-01-01", "2027-03-31")
    assert q2["period"] == "2027-Q2"
    # Won by 15 February: W1 10,000 + W2 5,000 EUR x 1.08. W3 is won on the 20th: still open.
    assert q1["won_to_date"] == 15_400.0
    # Open with a close date in Q1 as known on the 15th: W3 commit 7,000 (close 02-25),
    # O1 proposal 20,000 (03-15; moved to 04-15 only on the 20th), O2 negotiation
    # 10,000 EUR = 10,800 (01-31 passed: a CRM rolls it into the current quarter).
    assert q1["weighted_pipeline"] == 7_000 * 0.9 + 20_000 * 0.6 + 10_800 * 0.8  # 26,940
    assert q1["commit"] == 15_400 + 7_000 + 10_800
    assert q1["best_case"] == 15_400 + 7_000 + 10_800 + 20_000
    # Q2: O3 discovery 50,000 closing 05-10; O4 has no close date.
    assert (q2["won_to_date"], q2["weighted_pipeline"], q2["commit"], q2["best_case"]) == (
        0.0, 5_000.0, 0.0, 0.0,
    )  # fmt: skip
    # No complete quarter of history yet: nothing expected from deals not created yet.
    for p in (q1, q2):
        assert p["from_new_deals"] == 0.0
        assert p["expected"] == pytest.approx(p["won_to_date"] + p["from_open_deals"], abs=0.02)
        assert p["p10"] <= p["p50"] <= p["p90"]
    open_total = 7_000 + 20_000 + 10_800 + 50_000 + 8_000
    assert 15_400 < q1["expected"] < 15_400 + open_total
    assert q1["won_to_date"] <= q1["p10"]
    deals = {d["deal_id"]: d for d in f["deals"]}
    assert sorted(deals) == ["O1", "O2", "O3", "O4", "W3"]
    assert deals["O2"]["amount"] == 10_800.0 and deals["O2"]["category"] == "commit"
    o1 = deals["O1"]
    assert o1["stage"] == "proposal" and o1["close_date"] == "2027-03-15"
    assert o1["close_date_pushes"] == 1
    assert "close date pushed 1 time" in o1["reasons"]
    assert "close date 2027-03-15, in 28 days" in o1["reasons"]
    assert o1["reasons"][0].startswith("proposal (best_case): ")
    assert "(the stage's book probability is 60%)" in o1["reasons"][0]
    w3 = deals["W3"]
    assert w3["stage"] == "commit" and w3["days_in_stage"] == 13  # since 1 February, 09:00
    for d in deals.values():
        assert set(d["probabilities"]) == {"2027-Q1", "2027-Q2"}
        assert 0 <= sum(d["probabilities"].values()) <= d["win_probability"] + 1e-9
        assert d["win_probability"] <= 1.0

    table = runner.invoke(app, ["forecast", "--as-of", "2027-02-15", "--draws", "300", "--deals"])
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "2027-Q1" in line and "│" in line)
    assert "15,400" in row and "26,940" in row and "33,200" in row and "53,200" in row
    assert "O1  hooli.example  ana.souza@yourco.com  proposal  20,000 USD: 2027-Q1" in table.stdout
    assert "    close date pushed 1 time" in table.stdout


def test_backtest_uses_the_close_dates_known_then(loaded: Path) -> None:
    r = _json(["forecast", "--backtest", "--from", "2027-01-01", "--to", "2027-03-31",
               "--now", "2027-04-01T00:00:00Z", "--draws", "300", "--json"])  # fmt: skip
    assert set(r) == {"periods", "mape", "bias", "interval_coverage"}
    (q1,) = r["periods"]
    assert set(q1) == {"period", "start", "end", "actual", "touchflow", "naive", "commit"}
    assert set(q1["touchflow"]) == {"expected", "p10", "p50", "p90"}
    assert (q1["period"], q1["start"], q1["end"]) == ("2027-Q1", "2027-01-01", "2027-03-31")
    assert q1["actual"] == 10_000 + 5_400 + 7_000
    # As of 1 January: W1 negotiation 10,000 closing 01-15; W2 demo 5,400 closing 03-10;
    # L1 discovery 30,000 closing 02-28; O1 qualification 20,000 closing 01-31. W3 was
    # in proposal closing 04-30 then (its record's close date, 02-20, came later).
    naive = 10_000 * 0.8 + 5_400 * 0.4 + 30_000 * 0.1 + 20_000 * 0.2
    assert q1["naive"] == naive  # 17,160
    assert q1["commit"] == 10_000.0  # W1, the only deal in a commit stage then
    assert r["mape"]["naive"] == round(100 * abs(naive - 22_400) / 22_400, 2)  # 23.39
    assert r["bias"]["naive"] == -r["mape"]["naive"]
    assert r["mape"]["commit"] == round(100 * 12_400 / 22_400, 2)  # 55.36
    t = q1["touchflow"]
    assert r["mape"]["touchflow"] == round(100 * abs(t["expected"] - 22_400) / 22_400, 2)
    assert r["interval_coverage"] == (1.0 if t["p10"] <= 22_400 <= t["p90"] else 0.0)

    # Q1 is not over on 15 March: nothing to score yet.
    early = _json(["forecast", "--backtest", "--from", "2027-01-01", "--to", "2027-03-31",
                   "--now", "2027-03-15", "--json"])  # fmt: skip
    assert early == {
        "periods": [],
        "mape": {"touchflow": None, "naive": None, "commit": None},
        "bias": {"touchflow": None, "naive": None, "commit": None},
        "interval_coverage": None,
    }
    text = runner.invoke(app, ["forecast", "--backtest", "--from", "2027-01-01", "--to",
                               "2027-03-31", "--now", "2027-04-01", "--draws", "300"])  # fmt: skip
    assert text.exit_code == 0, text.output
    assert "MAPE touchflow" in text.stdout and "naive 23.4%, commit 55.4%" in text.stdout


def test_usage_errors(loaded: Path) -> None:
    no_range = runner.invoke(app, ["forecast", "--backtest", "--from", "2027-01-01"])
    assert no_range.exit_code == 2 and "--backtest needs --from DATE and --to DATE" in (
        no_range.output
    )
    stray = runner.invoke(app, ["forecast", "--from", "2027-01-01"])
    assert stray.exit_code == 2 and "--from and --to go with --backtest" in stray.output
    bad = runner.invoke(app, ["forecast", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output


def test_a_currency_without_a_rate_is_named(loaded: Path) -> None:
    (loaded / "more.csv").write_text(
        DEALS.splitlines()[0] + "\nJ1,jp.example,,900000,JPY,2027-01-05,2027-03-01,demo,,\n"
    )
    assert runner.invoke(app, ["deals", "import", "more.csv"]).exit_code == 0
    result = runner.invoke(app, ["forecast", "--as-of", "2027-02-15", "--json"])
    assert result.exit_code == 1
    assert "deals in JPY but config/pipeline.yaml forecast.rates has no rate to USD" in (
        result.stderr.replace("\n", " ")
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_touchflow_beats_the_naive_method_on_the_demo_history(
    project: Path, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled demo history through `deals import` and `forecast --backtest`."""
    from touchflow.demo.deal_history import write_csvs

    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", migrated_db_url)
    deals, stages, dates = write_csvs(project / "demo")
    imported = runner.invoke(
        app,
        ["deals", "import", str(deals), "--history", str(stages), "--close-dates", str(dates),
         "--now", "2026-12-01T00:00:00Z"],
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    r = _json(["forecast", "--backtest", "--from", "2025-01-01", "--to", "2026-12-31",
               "--now", "2026-12-01", "--draws", "200", "--json"])  # fmt: skip
    print(r["mape"], r["bias"], r["interval_coverage"])
    assert [p["period"] for p in r["periods"]] == [
        "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3",
    ]  # fmt: skip
    assert r["mape"]["touchflow"] < r["mape"]["naive"]
    assert r["mape"]["touchflow"] < r["mape"]["commit"]
    assert 0.5 <= r["interval_coverage"] <= 1.0
