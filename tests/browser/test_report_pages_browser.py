"""The report pages in headless Chromium over a dataset built through the public commands.

``touchflow import``, ``enroll``, ``run``, ``event`` and ``deals import`` build a
known history; ``touchflow report ... --json`` says what the numbers are; the
pages must show the same, change with the filters, and take a reply live.
Screenshots of every page are saved under the test's tmp dir (``pytest -s``
prints their paths).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.conftest import ADMIN, ANA, BEN, MGR, Site
from tests.conftest import ROOT

LIVE_TIMEOUT_MS = 10_000
PEOPLE = {
    ANA: ["dana@initech.example", "eli@initech.example", "fay@hooli.example", "gus@hooli.example"],
    BEN: ["hal@umbrella.example", "ida@umbrella.example"],
}
DEALS_CSV = """\
deal_id,account_domain,owner_email,amount,currency,created_at,close_date,stage,closed_at,outcome
D-100,initech.example,ana@x.example,48000,USD,{created},{close},demo,,
D-101,hooli.example,ana@x.example,120000,USD,{created},{close},negotiation,,
D-200,umbrella.example,ben@x.example,75000,USD,{created},{close},proposal,,
"""


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _build(site: Site) -> None:
    """Two reps' prospects enrolled, the intro emails (to files), two replies, three deals."""
    site.env["TOUCHFLOW_EMAIL_TRANSPORT"] = "outbox"  # the CLI's ticks: emails as .eml files
    day = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0)
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    for owner, emails in PEOPLE.items():
        csv = site.cwd / f"{owner.split('@')[0]}.csv"
        rows = ["email,first_name,last_name,title,company,domain,country,timezone"]
        for e in emails:
            name, domain = e.split("@")
            rows.append(
                f"{e},{name.title()},Doe,VP Sales,{domain.split('.')[0].title()},{domain},US,"
                "America/New_York"
            )
        csv.write_text("\n".join(rows) + "\n")
        site.touchflow("import", str(csv))
        site.touchflow("enroll", "t-cadence", "--all", "--owner", owner, "--now", _iso(day))
    site.touchflow("run", "--now", _iso(day + timedelta(minutes=30)))
    site.touchflow("event", "dana@initech.example", "reply")
    site.touchflow("event", "hal@umbrella.example", "reply")
    config = site.cwd / "config"
    config.mkdir(exist_ok=True)
    shutil.copy(ROOT / "config" / "pipeline.yaml", config / "pipeline.yaml")
    deals = site.cwd / "deals.csv"
    close = (day + timedelta(days=60)).date().isoformat()
    deals.write_text(DEALS_CSV.format(created=_iso(day - timedelta(days=30)), close=close))
    site.touchflow("deals", "import", str(deals))


def _report(site: Site, name: str, *args: str) -> Any:
    return json.loads(site.touchflow("report", name, "--json", *args).stdout)


def _funnel_on_page(page: Any) -> dict[str, int]:
    cells = page.locator("[data-testid=funnel] tr[data-stage]")
    out = {}
    for i in range(cells.count()):
        row = cells.nth(i)
        count = row.locator("td[data-col=count]").inner_text().replace(",", "")
        out[row.get_attribute("data-stage")] = int(count)
    return out


def _funnel_of(report: Any) -> dict[str, int]:
    return {r["stage"]: r["count"] for r in report["rows"] if r["cadence"] == "(all)"}


@pytest.fixture
def known(site: Site) -> Site:
    _build(site)
    return site


def test_the_pages_show_the_reports_numbers_and_follow_the_filters(
    known: Site, browser: Any
) -> None:
    site = known
    everyone = _funnel_of(_report(site, "funnel"))
    bens = _funnel_of(_report(site, "funnel", "--owner", BEN))
    assert everyone["prospect"] == 9 and everyone["contacted"] == 9 and everyone["replied"] == 2
    assert bens["prospect"] == 3 and bens["replied"] == 1
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    site.sign_in(page, ADMIN)
    page.wait_for_selector("body[data-loaded='1']")
    assert _funnel_on_page(page) == everyone
    week = page.locator("[data-testid=week] [data-metric=replied] [data-week=this]")
    this_week = _report(site, "cadences")  # replies of every step, for the week card's total
    assert int(week.inner_text()) <= sum(r["replied"] for r in this_week["rows"])
    site.shot(page, "overview-admin")
    # The owner filter: ben's numbers, as `touchflow report funnel --owner ben` says.
    page.select_option("select[name=owner]", BEN)
    page.wait_for_url(f"**owner={BEN.replace('@', '%40')}*")
    page.wait_for_selector("body[data-loaded='1']")
    assert _funnel_on_page(page) == bens != everyone
    site.shot(page, "overview-ben")
    # Cadences: the same rows as `touchflow report cadences`, with the decision.
    page.goto(f"{site.url}/dashboard/cadences")
    page.wait_for_selector("body[data-loaded='1']")
    rows = _report(site, "cadences")["rows"]
    table = page.locator("[data-testid=cadences] tbody tr")
    assert table.count() == len(rows)
    intro = [r for r in rows if r["step"] == "intro"]
    for r in intro:
        tr = page.locator(
            f"[data-testid=cadences] tr[data-step=intro][data-variant={r['variant']}]"
        )
        assert tr.locator("td[data-col=sent]").inner_text() == str(r["sent"])
        assert tr.locator("td[data-col=replied]").inner_text() == str(r["replied"])
        assert "not enough data" in tr.locator("td[data-col=decision]").inner_text()
    drawn = page.evaluate("() => Chart.getChart('rates-chart-canvas').data.datasets[0].data.length")
    assert drawn == len(rows)
    site.shot(page, "cadences")
    # The cadence filter to one that does not exist: no rows, and a note instead of a chart.
    page.goto(f"{site.url}/dashboard/cadences?cadence=nope")
    page.wait_for_selector("body[data-loaded='1']")
    assert "No data for these filters" in page.locator("#rates-chart").inner_text()
    for name in ("team", "deliverability", "accounts", "pipeline"):
        page.goto(f"{site.url}/dashboard/{name}")
        page.wait_for_selector("body[data-loaded='1']")
        site.shot(page, name)
    page.goto(f"{site.url}/dashboard/accounts")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("[data-testid=accounts] tbody tr").count() == 3
    assert page.locator("[data-stat=deals]").inner_text() == "3"
    # Two deals a page: the count is still all three; "next" keeps the filters.
    page.goto(f"{site.url}/dashboard/accounts?period=30&limit=2")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("[data-testid=accounts] tbody tr").count() == 2
    assert page.locator("[data-stat=deals]").inner_text() == "3"
    assert page.locator("[data-testid=accounts-prev]").count() == 0
    with page.expect_navigation():
        page.click("[data-testid=accounts-next]")
    page.wait_for_selector("body[data-loaded='1']")
    assert "period=30" in page.url and "limit=2" in page.url and "offset=2" in page.url
    assert page.locator("[data-testid=accounts] tbody tr").count() == 1
    assert page.locator("[data-testid=accounts-range]").inner_text() == "3–3 of 3"
    assert page.locator("[data-testid=accounts-next]").count() == 0
    assert page.locator("[data-testid=accounts-prev]").count() == 1
    # The forecast page: the open deals' forecast, as `touchflow forecast --json` has it.
    page.goto(f"{site.url}/dashboard/pipeline")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("[data-testid=forecast] tbody tr").count() == 2  # this period, the next
    assert page.evaluate("() => Chart.getChart('forecast-chart-canvas') !== undefined")
    page.goto(f"{site.url}/dashboard/deliverability")
    sent = _report(site, "deliverability")["rows"]
    shown = page.locator("[data-testid=deliverability] tr[data-domain='*'] td[data-col=sent]")
    assert int(shown.first.inner_text()) == next(r["sent"] for r in sent if r["domain"] == "*")
    page.close()


def test_a_manager_sees_their_team_and_a_reply_updates_the_figures_live(
    known: Site, browser: Any
) -> None:
    site = known
    anas = _funnel_of(_report(site, "funnel", "--owner", ANA))
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    site.sign_in(page, MGR)  # ana's manager: ana's numbers (ben has no manager)
    page.wait_for_selector("#live-state.on", timeout=LIVE_TIMEOUT_MS)
    assert _funnel_on_page(page) == anas
    cadences = context.new_page()
    cadences.goto(f"{site.url}/dashboard/cadences")
    cadences.wait_for_selector("#live-state.on", timeout=LIVE_TIMEOUT_MS)
    before = cadences.locator("tr[data-step=intro] td[data-col=replied]").all_inner_texts()
    # One of ana's prospects replies (through the CLI, as a rep records it): no reload.
    site.touchflow("event", "fay@hooli.example", "reply")
    page.locator("[data-testid=activity-feed] li", has_text="Fay").wait_for(timeout=LIVE_TIMEOUT_MS)
    replied = page.locator("[data-testid=funnel] tr[data-stage=replied] td[data-col=count]")
    want = str(anas["replied"] + 1)
    cell = "[data-testid=funnel] tr[data-stage=replied] td[data-col=count]"
    page.wait_for_function(
        f"() => document.querySelector('{cell}').textContent === '{want}'", timeout=LIVE_TIMEOUT_MS
    )
    assert replied.inner_text() == want
    assert _funnel_on_page(page) == _funnel_of(_report(site, "funnel", "--owner", ANA))
    cadences.wait_for_function(
        "() => Number(document.body.dataset.refreshed || 0) >= 1", timeout=LIVE_TIMEOUT_MS
    )
    after = cadences.locator("tr[data-step=intro] td[data-col=replied]").all_inner_texts()
    assert sum(map(int, after)) == sum(map(int, before)) + 1
    for p in (page, cadences):
        assert p.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    # A deal of ana's moves on (a CRM pull or `deals import` records the stage change).
    moved = site.cwd / "moved.csv"
    lines = (site.cwd / "deals.csv").read_text().splitlines()
    moved.write_text("\n".join([lines[0], lines[1].replace(",demo,", ",proposal,")]) + "\n")
    site.touchflow("deals", "import", str(moved))
    feed = page.locator("[data-testid=activity-feed]")
    feed.locator("li", has_text="moved to proposal").wait_for(timeout=LIVE_TIMEOUT_MS)
    site.shot(page, "overview-live-manager")
    site.shot(cadences, "cadences-live-manager")
    context.close()
