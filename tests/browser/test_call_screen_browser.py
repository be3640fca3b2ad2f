"""The live call screen in headless Chromium: a scripted call played through signed
Twilio transcription callbacks (the real webhook) shows its cards in order and ticks the
checklist; the rep's manager watches it from the live calls page; another rep cannot."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from twilio.request_validator import RequestValidator

from tests.browser.conftest import ANA, BEN, MGR, TWILIO_TOKEN, Site
from touchflow.store.schema import enrollments, tasks

SID = "CA" + "e" * 32
PATH = "/webhooks/twilio/transcription"
TIMEOUT_MS = 10_000
PROSPECT, REP = "outbound_track", "inbound_track"
SCRIPT = [
    (REP, 1, "hi this is sam from touchflow do you have a minute", True, None),
    (PROSPECT, 1, "sure we already use", False, 0.3),  # provisional: shown, fires nothing
    (PROSPECT, 1, "sure we already use gong for this", True, None),
    (REP, 2, "what is your biggest challenge with it", True, None),
    (PROSPECT, 2, "we are struggling with manual work and what is the price", True, None),
    (REP, 3, "who is the decision maker and what budget did you set", True, None),
    (PROSPECT, 3, "just send me something by email", True, None),
]
CARDS = ["already-have-vendor", "competitor", "pricing", "send-me-something"]


def _call_task(site: Site) -> int:
    """An open call task of ANA's (on one of her enrollments), as the cadence would make."""
    engine = create_engine(site.env["TOUCHFLOW_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            enrollment = conn.execute(
                select(enrollments.c.id).where(enrollments.c.owner_email == ANA).limit(1)
            ).scalar_one()
            now = datetime.now(UTC)
            return int(
                conn.execute(
                    tasks.insert()
                    .values(
                        touch_key=f"browser-call-{SID}",
                        enrollment_id=enrollment,
                        step_id="call-1",
                        channel="call",
                        owner_email=ANA,
                        title="Call Ann (Acme)",
                        status="open",
                        due_at=now,
                        created_at=now,
                    )
                    .returning(tasks.c.id)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _post(site: Site, task_id: int, form: dict[str, str]) -> None:
    path = f"{PATH}?task_id={task_id}&consent=transcribe"
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(site.url + path, form)
    r = httpx.post(site.url + path, data=form, headers={"X-Twilio-Signature": sig}, timeout=10)
    assert r.status_code == 204, r.text


def _cb(event: str, **fields: Any) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": SID,
        "TranscriptionSid": "GT" + "f" * 32,
        "TranscriptionEvent": event,
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    form.update({k: str(v) for k, v in fields.items()})
    return form


def _segment(track: str, seq: int, text: str, final: bool, stability: float | None) -> dict:
    return _cb(
        "transcription-content",
        Track=track,
        SequenceId=seq,
        LanguageCode="en-US",
        Final="true" if final else "false",
        Stability=stability if stability is not None else 0.95,
        TranscriptionData=json.dumps({"transcript": text, "confidence": 0.9}),
    )


def _cards(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "[data-testid=cards] .guidance-card", "els => els.map(e => e.dataset.tracker)"
    )


def test_a_scripted_call_shows_cards_in_order_and_ticks_the_checklist(
    site: Site, browser: Any
) -> None:
    task_id = _call_task(site)
    _post(site, task_id, _cb("transcription-started", LanguageCode="en-US"))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    site.sign_in(page, ANA)
    page.goto(f"{site.url}/calls/{SID}")
    page.wait_for_selector("#live-state.on", timeout=TIMEOUT_MS)
    assert _cards(page) == []
    seen: list[list[str]] = []
    for track, seq, text, final, stability in SCRIPT:
        _post(site, task_id, _segment(track, seq, text, final, stability))
        if not final:  # the partial is on screen, marked provisional
            page.wait_for_selector(".transcript li.provisional", timeout=TIMEOUT_MS)
            assert "provisional" in page.locator(".transcript li.provisional").inner_text()
            site.shot(page, "call-provisional")
        time.sleep(0.15)
        seen.append(_cards(page))
    page.wait_for_function(
        f"() => document.querySelectorAll('.guidance-card').length >= {len(CARDS)}",
        timeout=TIMEOUT_MS,
    )
    assert _cards(page) == CARDS
    # The cards arrived one after another, never out of order (every snapshot a prefix).
    assert all(snap == CARDS[: len(snap)] for snap in seen), seen
    assert page.locator(".transcript li.provisional").count() == 0  # the final replaced it
    assert page.locator(".transcript li").count() == 6
    assert page.locator(".transcript li.said-by-rep").count() == 3
    checked = page.eval_on_selector_all(
        "[data-testid=checklist] li.checked", "els => els.map(e => e.dataset.item)"
    )
    assert checked == ["budget", "authority", "need"]
    # Card bodies are rendered Markdown with links, and nothing else.
    card = page.locator(".guidance-card[data-tracker=competitor]")
    assert card.locator("strong").count() >= 1
    assert card.locator("a[target=_blank]").count() >= 1
    assert page.locator(".guidance-card script").count() == 0
    site.shot(page, "call-screen")
    # A reload (or a page opened late) shows the same state, from the store.
    page.reload()
    page.wait_for_selector("#live-state.on", timeout=TIMEOUT_MS)
    assert _cards(page) == CARDS
    api = httpx.get(
        f"{site.url}/api/calls/{SID}/guidance", headers={"X-API-Key": site.env["TOUCHFLOW_API_KEY"]}
    ).json()
    assert [c["tracker"] for c in api["cards"]] == CARDS
    assert api["checklist"] == {
        "budget": True, "authority": True, "need": True, "timeline": False, "next-step": False
    }  # fmt: skip

    # Her manager watches the call from the live calls page; it keeps updating.
    boss = browser.new_context().new_page()
    site.sign_in(boss, MGR)
    boss.click("nav.sections >> text=Live calls")
    # The nav carries the dashboard's filters in the query string.
    boss.wait_for_url(re.compile(re.escape(f"{site.url}/calls") + r"(\?.*)?$"))
    boss.click(f"a[href='/calls/{SID}']")
    boss.wait_for_selector("#live-state.on", timeout=TIMEOUT_MS)
    assert _cards(boss) == CARDS
    _post(site, task_id, _segment(REP, 4, "great the next step is a calendar invite", True, None))
    for p in (page, boss):
        p.wait_for_selector(".guidance-card[data-tracker=next-step]", timeout=TIMEOUT_MS)
        p.wait_for_selector("[data-item=next-step].checked", timeout=TIMEOUT_MS)
    _post(site, task_id, _cb("transcription-stopped"))
    boss.wait_for_selector("#call-status.status-ended", timeout=TIMEOUT_MS)
    site.shot(boss, "call-screen-manager")

    # Another rep sees neither the call nor its list entry.
    other = browser.new_context().new_page()
    site.sign_in(other, BEN)
    response = other.goto(f"{site.url}/calls/{SID}")
    assert response is not None and response.status == 404
    assert other.locator(".guidance-card").count() == 0
    other.goto(f"{site.url}/calls")
    assert other.locator(f"a[href='/calls/{SID}']").count() == 0
