"""The dashboard in headless Chromium: sign-in, CSRF, the chart, and replies arriving live."""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.conftest import ANA, BEN, Site

LIVE_TIMEOUT_MS = 10_000


def test_unauthenticated_visitors_are_sent_to_sign_in_then_see_the_overview(
    site: Site, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{site.url}/dashboard?period=7")
    assert "/signin?next=" in page.url
    assert page.locator("input[name=password]").is_visible()
    site.shot(page, "signin")
    page.fill("input[name=email]", ANA)
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong email or password."
    page.fill("input[name=email]", ANA)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/dashboard?period=7")  # back where they were going
    assert ANA in page.locator("[data-testid=viewer]").inner_text()
    # The chart is drawn by the vendored Chart.js, with ana's two sends (not ben's one).
    drawn = page.evaluate(
        "() => { const c = Chart.getChart('daily-chart');"
        " return c ? c.data.datasets[0].data.reduce((a, b) => a + b, 0) : null; }"
    )
    assert drawn == 2
    assert page.locator("[data-testid=totals]").inner_text().startswith("2 sent")
    # The filters bar is wired to the query string.
    page.select_option("select[name=period]", "30")
    page.wait_for_url("**/dashboard?period=30*")
    assert page.evaluate("() => Chart.getChart('daily-chart').data.labels.length") == 30
    site.shot(page, "overview")
    page.close()


def test_a_forged_post_from_another_site_is_refused(site: Site, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    site.sign_in(page, ANA)
    # An attacker's page submits a sign-out form to touchflow without the token.
    forged = (
        f'<form id="f" method="post" action="{site.url}/signout">'
        '<input name="csrf_token" value="guessed"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    page.goto("data:text/html," + forged)
    page.wait_for_load_state()
    assert "403" in page.content() and "did not come from touchflow" in page.content()
    site.shot(page, "csrf-refused")
    page.goto(f"{site.url}/dashboard")
    assert page.url == f"{site.url}/dashboard"  # still signed in
    # The real sign-out button (which carries the token) works.
    page.click("text=Sign out")
    page.wait_for_url(f"{site.url}/signin")
    page.goto(f"{site.url}/dashboard")
    assert "/signin" in page.url
    context.close()


def test_a_reply_appears_live_and_only_for_its_owner(site: Site, browser: Any) -> None:
    ana_ctx, ben_ctx = browser.new_context(), browser.new_context()
    ana, ben = ana_ctx.new_page(), ben_ctx.new_page()
    ana.set_viewport_size({"width": 1280, "height": 800})
    site.sign_in(ana, ANA)
    site.sign_in(ben, BEN)
    for page in (ana, ben):
        page.wait_for_selector("#live-state.on", timeout=LIVE_TIMEOUT_MS)
        assert "No replies" in page.locator("[data-testid=activity-feed]").inner_text()
    # Ben's prospect replies first, then Ana's: through the CLI, as a rep records one.
    site.touchflow("event", "cy@globex.example", "reply")
    site.touchflow("event", "ann@acme.example", "reply")
    feed = ana.locator("[data-testid=activity-feed]")
    feed.locator("li", has_text="Ann").wait_for(timeout=LIVE_TIMEOUT_MS)
    ben.locator("[data-testid=activity-feed] li", has_text="Cy").wait_for(timeout=LIVE_TIMEOUT_MS)
    # No reload happened: the page is the same document, the item was added by the stream.
    assert ana.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    assert "Cy" not in feed.inner_text() and "globex" not in feed.inner_text()
    assert "Ann" not in ben.locator("[data-testid=activity-feed]").inner_text()
    assert "replied" in feed.inner_text()
    # The chart counted the reply on today's bar, still without a reload.
    replies = "() => Chart.getChart('daily-chart').data.datasets[1].data.reduce((a, b) => a + b, 0)"
    assert ana.evaluate(replies) == 1
    assert ana.locator("[data-total=replies]").inner_text() == "1"
    site.shot(ana, "live-reply-ana")
    site.shot(ben, "live-reply-ben")
    # The same numbers the page shows, through the JSON route with the API key.
    data = httpx.get(
        f"{site.url}/api/dashboard/activity",
        headers={"X-API-Key": site.env["TOUCHFLOW_API_KEY"]},
        timeout=10,
    ).json()
    assert sorted(a["email"] for a in data["activity"]) == ["ann@acme.example", "cy@globex.example"]
    ana_ctx.close()
    ben_ctx.close()
