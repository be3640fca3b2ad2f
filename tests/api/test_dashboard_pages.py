"""The dashboard's report pages and data endpoints: the reports' numbers, cut to the viewer.

A rep sees their own numbers, a manager their team's, an admin everyone's;
an owner outside the viewer's team in the query gives empty numbers. Every
figure is the reporting service's (the same as ``touchflow report``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import API_KEY, MON, NOW
from tests.api.test_dashboard_auth import ADMIN, ANA, BEN, MGR, Dash, _dash, sign_in
from tests.conftest import ROOT
from touchflow import bootstrap
from touchflow.domain.pipeline import load_pipeline
from touchflow.services.deals import import_deals
from touchflow.services.reporting import ReportQuery, refresh, run_report

PAGES = ("overview", "cadences", "team", "deliverability", "accounts", "pipeline")
DEALS_CSV = """\
deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome
D1,acme.example,ana@x.example,50000,USD,2026-10-01T10:00:00Z,2027-01-31,demo,,
D2,globex.example,ben@x.example,80000,USD,2026-10-05T10:00:00Z,2027-02-28,proposal,,
"""


@pytest.fixture
def dash(db: Engine, tmp_path: Path) -> Iterator[Dash]:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "pipeline.yaml", config / "pipeline.yaml")
    # The pages wait for the forecast they start (a test is not a page that reloads later).
    d = _dash(db, tmp_path, config_dir=config, reports={"forecast_wait_s": 60})
    # A reply from one of ana's prospects, and two open deals (ana's and ben's).
    d.harness.exit_event("ann@acme.example", "reply", NOW)
    (tmp_path / "deals.csv").write_text(DEALS_CSV)
    import_deals(db, tmp_path / "deals.csv", load_pipeline(config / "pipeline.yaml"), NOW)
    refresh(db)  # as the tick does: the pages read the rollups as they stand
    with d.client:
        yield d


def _as(dash: Dash, email: str) -> TestClient:
    client = TestClient(dash.client.app, follow_redirects=False)
    assert sign_in(client, email).status_code == 303
    return client


def _sent(data: dict[str, Any]) -> int:
    return sum(r["sent"] for r in data["rows"])


def _stage(data: dict[str, Any], stage: str) -> int:
    return next(r["count"] for r in data["funnel"] if r["stage"] == stage)


def test_each_viewer_sees_their_own_numbers_a_manager_their_team_an_admin_all(dash: Dash) -> None:
    seen = {}
    for who in (ANA, BEN, MGR, ADMIN):
        c = _as(dash, who)
        seen[who] = {p: c.get(f"/api/dashboard/{p}").json() for p in PAGES}
    assert {w: _sent(s["cadences"]) for w, s in seen.items()} == {ANA: 2, BEN: 1, MGR: 2, ADMIN: 3}
    assert {w: _stage(s["overview"], "prospect") for w, s in seen.items()} == {
        ANA: 2, BEN: 1, MGR: 2, ADMIN: 3,
    }  # fmt: skip
    assert {w: _stage(s["overview"], "replied") for w, s in seen.items()} == {
        ANA: 1, BEN: 0, MGR: 1, ADMIN: 1,
    }  # fmt: skip
    assert seen[ANA]["overview"]["week"]["this_week"]["replied"] == 1
    assert seen[ANA]["overview"]["filters"]["owners"] == [ANA]
    assert seen[ADMIN]["overview"]["filters"]["owners"] is None
    # Deals by their owner: ana's D1, ben's D2, the manager ana's, the admin both.
    deals = {w: sorted(d["deal_id"] for d in s["accounts"]["deals"]) for w, s in seen.items()}
    assert deals == {ANA: ["D1"], BEN: ["D2"], MGR: ["D1"], ADMIN: ["D1", "D2"]}
    # The forecast is of the deals one may see: ana's 50,000, ben's 80,000.
    books = {
        w: sorted(d["deal_id"] for d in s["pipeline"]["forecast"]["deals"]) for w, s in seen.items()
    }
    assert books == {ANA: ["D1"], BEN: ["D2"], MGR: ["D1"], ADMIN: ["D1", "D2"]}
    weighted = {
        w: sum(p["weighted_pipeline"] for p in s["pipeline"]["forecast"]["periods"])
        for w, s in seen.items()
    }
    assert weighted[ADMIN] == pytest.approx(weighted[ANA] + weighted[BEN]) and weighted[ANA] > 0
    overview = seen[ANA]["overview"]["forecast"]["periods"]
    assert sum(p["weighted_pipeline"] for p in overview) == weighted[ANA]
    # Deliverability: a rep sees their touches per mailbox, never the shared mailbox's total.
    rep = seen[ANA]["deliverability"]["rows"]
    assert [(r["domain"], r["sent"]) for r in rep] == [("*", 2)]
    admin = seen[ADMIN]["deliverability"]["rows"]
    assert next(r["sent"] for r in admin if r["domain"] == "*") == 3
    # Workload rows only for the people one may see.
    assert {r["owner"] for r in seen[BEN]["team"]["workload"]} <= {BEN}


def test_an_owner_outside_the_team_gives_empty_numbers_and_a_filter_narrows(dash: Dash) -> None:
    ana = _as(dash, ANA)
    other = ana.get("/api/dashboard/cadences", params={"owner": BEN}).json()
    assert other["rows"] == [] and other["filters"]["owners"] == []
    assert _stage(ana.get("/api/dashboard/overview", params={"owner": BEN}).json(), "prospect") == 0
    admin = _as(dash, ADMIN)
    only_ben = admin.get("/api/dashboard/cadences", params={"owner": BEN}).json()
    assert _sent(only_ben) == 1
    wrong = admin.get("/api/dashboard/cadences", params={"cadence": "no-such-cadence"}).json()
    assert wrong["rows"] == []
    # A window without the sends has none.
    before = admin.get("/api/dashboard/cadences", params={"from": "2026-11-01", "to": "2026-11-29"})
    assert before.json()["rows"] == []
    bad = admin.get("/api/dashboard/cadences", params={"from": "2026-12-01", "to": "2026-11-01"})
    assert bad.status_code == 422


def test_the_data_is_the_reporting_services(dash: Dash) -> None:
    """The endpoint's rows equal ``touchflow report``'s for the same window and owners."""
    ctx = bootstrap.report_context(dash.settings, NOW)
    since, until = date(2026, 11, 17), NOW.date()  # the default 14 days
    # Deliverability: per mailbox, its worst recipient domains (the dashboard's domain_top).
    worst = replace(ctx, domain_top=ctx.dashboard_domain_top)
    for page, name, page_ctx in (("cadences", "cadences", ctx),
                                 ("deliverability", "deliverability", worst)):  # fmt: skip
        got = dash.client.get(f"/api/dashboard/{page}", headers={"X-API-Key": API_KEY}).json()
        want = run_report(dash.engine, name, ReportQuery(since, until), page_ctx, fresh=False)
        assert got["rows"] == want.rows
    ana_rows = _as(dash, ANA).get("/api/dashboard/cadences").json()["rows"]
    want = run_report(dash.engine, "cadences", ReportQuery(since, until, owner=ANA), ctx)
    assert ana_rows == want.rows
    funnel = run_report(dash.engine, "funnel", ReportQuery(since, until), ctx)
    overview = dash.client.get("/api/dashboard/overview", headers={"X-API-Key": API_KEY}).json()
    assert overview["funnel"] == [r for r in funnel.rows if r["cadence"] == "(all)"]
    assert MON.date().isoformat() in overview["daily"]["days"]


def test_pages_render_for_a_signed_in_viewer_and_nobody_else(dash: Dash) -> None:
    for page in PAGES:
        assert dash.client.get(f"/api/dashboard/{page}").status_code == 401
    for path in ("/dashboard/cadences", "/dashboard/team", "/dashboard/deliverability",
                 "/dashboard/accounts", "/dashboard/pipeline"):  # fmt: skip
        assert dash.client.get(path).status_code == 303
    ana = _as(dash, ANA)
    for path in ("/dashboard/cadences", "/dashboard/team", "/dashboard/deliverability",
                 "/dashboard/accounts", "/dashboard/pipeline", "/dashboard?from=&to="):  # fmt: skip
        r = ana.get(path + ("&" if "?" in path else "?") + "cadence=&owner=")
        assert r.status_code == 200, (path, r.text[:300])
        assert 'id="page-data"' in r.text and "/static/pages.js" in r.text
