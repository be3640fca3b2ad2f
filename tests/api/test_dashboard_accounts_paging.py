"""The accounts page in pages: biggest deal first, the owner cut before paging, counts over all.

``limit`` (50, at most 500) deals from ``offset``, in amount order then source
and deal id; ``total``, ``single_threaded`` and ``average_coverage`` are over
every open deal the viewer may see, whatever the page.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import API_KEY, NOW
from tests.api.test_dashboard_auth import ADMIN, ANA, BEN, MGR, Dash, _dash, sign_in
from tests.conftest import ROOT
from touchflow.domain.deals import CommitteeRole, DealContact
from touchflow.domain.pipeline import load_pipeline
from touchflow.services.committee import committee_report
from touchflow.services.deals import import_deals
from touchflow.services.reporting import refresh
from touchflow.store.deals import upsert_contacts

HEAD = (
    "deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,"
    "outcome\n"
)
DEALS = [  # (id, domain, owner, amount): ties at 80,000 and 30,000
    ("D1", "acme.example", ANA, 50000),
    ("D2", "globex.example", BEN, 80000),
    ("D3", "a3.example", ANA, 80000),
    ("D4", "a4.example", BEN, 120000),
    ("D5", "a5.example", ANA, 10000),
    ("D6", "a6.example", BEN, 30000),
    ("D7", "a7.example", ANA, 30000),
]
ORDER = ["D4", "D2", "D3", "D1", "D6", "D7", "D5"]  # amount desc, then deal id
ANAS = [d for d in ORDER if dict((i, o) for i, _, o, _ in DEALS)[d] == ANA]


@pytest.fixture
def dash(db: Engine, tmp_path: Path) -> Iterator[Dash]:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "pipeline.yaml", config / "pipeline.yaml")
    d = _dash(db, tmp_path, config_dir=config)
    rows = [f"{i},{dom},{o},{amt},USD,2026-10-01T10:00:00Z,2027-01-31,demo,,\n"
            for i, dom, o, amt in DEALS]  # fmt: skip
    # Closed, and the biggest: never on the page.
    rows.append(f"D8,a8.example,{ANA},999999,USD,2026-10-01T10:00:00Z,2026-11-15,closed_won,"
                "2026-11-15T10:00:00Z,won\n")  # fmt: skip
    (tmp_path / "deals.csv").write_text(HEAD + "".join(rows))
    import_deals(db, tmp_path / "deals.csv", load_pipeline(config / "pipeline.yaml"), NOW)
    with db.begin() as conn:  # D3: two people, not single-threaded (D1: ann and bob, touched)
        upsert_contacts(conn, "csv", [
            DealContact("D3", "eb@a3.example", CommitteeRole("economic_buyer")),
            DealContact("D3", "champ@a3.example", CommitteeRole("champion")),
        ])  # fmt: skip
    refresh(db)
    with d.client:
        yield d


def _get(client: TestClient, **params: Any) -> Any:
    r = client.get("/api/dashboard/accounts", params=params, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200, r.text
    return r.json()


def _as(dash: Dash, email: str) -> TestClient:
    client = TestClient(dash.client.app, follow_redirects=False)
    assert sign_in(client, email).status_code == 303
    return client


def _single(dash: Dash, owners: set[str] | None) -> int:
    with dash.engine.connect() as conn:
        found = committee_report(conn, load_pipeline(ROOT / "config" / "pipeline.yaml"))
    return sum(
        1
        for c in found
        if c.coverage.single_threaded and (owners is None or c.deal.owner_email in owners)
    )


def test_pages_follow_each_other_biggest_first(dash: Dash) -> None:
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        got = _get(dash.client, limit=3, offset=offset)
        assert got["total"] == len(ORDER)
        assert got["page"]["limit"] == 3 and got["page"]["offset"] == offset
        assert got["page"]["prev_offset"] == (None if offset == 0 else offset - 3)
        seen += [d["deal_id"] for d in got["deals"]]
        offset, pages = got["page"]["next_offset"], pages + 1
    assert seen == ORDER and pages == 3
    default = _get(dash.client)
    assert [d["deal_id"] for d in default["deals"]] == ORDER
    assert default["page"] == {"limit": 50, "offset": 0, "order": "amount desc, source, deal_id",
                               "next_offset": None, "prev_offset": None}  # fmt: skip


def test_the_owner_cut_comes_before_the_page(dash: Dash) -> None:
    ana = _as(dash, ANA)
    first = ana.get("/api/dashboard/accounts", params={"limit": 2}).json()
    # Ben's D4 and D2 are the biggest: cut after paging, ana's first page would be empty.
    assert [d["deal_id"] for d in first["deals"]] == ANAS[:2]
    assert first["total"] == len(ANAS) and first["page"]["next_offset"] == 2
    second = ana.get("/api/dashboard/accounts", params={"limit": 2, "offset": 2}).json()
    assert [d["deal_id"] for d in second["deals"]] == ANAS[2:4]
    assert second["page"]["next_offset"] is None and second["page"]["prev_offset"] == 0
    manager = _as(dash, MGR).get("/api/dashboard/accounts", params={"limit": 1}).json()
    assert [d["deal_id"] for d in manager["deals"]] == ANAS[:1] and manager["total"] == len(ANAS)
    only_ben = _get(dash.client, owner=BEN, limit=2)
    assert [d["deal_id"] for d in only_ben["deals"]] == ["D4", "D2"] and only_ben["total"] == 3
    nobody = ana.get("/api/dashboard/accounts", params={"owner": BEN}).json()
    assert (nobody["deals"], nobody["total"], nobody["single_threaded"]) == ([], 0, 0)


def test_the_counts_are_over_every_page(dash: Dash) -> None:
    everyone, anas = _single(dash, None), _single(dash, {ANA})
    assert 0 < anas < everyone < len(ORDER)  # D1 and D3 have two people each
    for offset in (0, 1, 6):
        got = _get(dash.client, limit=1, offset=offset)
        assert len(got["deals"]) == 1 and got["single_threaded"] == everyone
    mine = _as(dash, ANA).get("/api/dashboard/accounts", params={"limit": 1}).json()
    assert mine["single_threaded"] == anas
    every = _get(dash.client, limit=500)["deals"]
    assert _get(dash.client, limit=1)["average_coverage"] == pytest.approx(
        sum(d["coverage"] for d in every) / len(every), abs=1e-4
    )


def test_a_page_past_the_end_is_empty_and_points_back(dash: Dash) -> None:
    got = _get(dash.client, limit=3, offset=100)
    assert got["deals"] == [] and got["total"] == len(ORDER)
    assert got["page"]["next_offset"] is None and got["page"]["prev_offset"] == 6  # the last page


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}])
def test_paging_out_of_bounds_is_refused(dash: Dash, params: dict[str, Any]) -> None:
    r = dash.client.get("/api/dashboard/accounts", params=params, headers={"X-API-Key": API_KEY})
    assert r.status_code == 422


def test_the_page_links_to_the_next_and_previous_keeping_the_filters(dash: Dash) -> None:
    admin = _as(dash, ADMIN)
    html = admin.get(f"/dashboard/accounts?period=30&owner={BEN}&limit=1&offset=1").text
    links = {
        rel: href.replace("&amp;", "&")
        for rel, href in re.findall(r'<a rel="(next|prev)"[^>]*href="\?([^"]+)"', html)
    }
    assert set(links) == {"next", "prev"}
    for rel, offset in (("next", 2), ("prev", 0)):
        assert "period=30" in links[rel] and "owner=ben%40x.example" in links[rel]
        assert f"limit=1&offset={offset}" in links[rel]
        followed = admin.get("/api/dashboard/accounts?" + links[rel]).json()
        assert followed["total"] == 3 and followed["page"]["offset"] == offset
    assert "2&ndash;2 of 3" in html or "2–2 of 3" in html
    last = admin.get(f"/dashboard/accounts?owner={BEN}&limit=2&offset=2").text
    assert 'rel="prev"' in last and 'rel="next"' not in last
