"""Live guidance through the real webhook: signed transcription callbacks in, cards on the
call's topic and in ``GET /api/calls/{sid}/guidance``; forged callbacks show nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import API_KEY, MON, PEOPLE, World, build_world
from touchflow.store.tasks import list_tasks

ROOT = Path(__file__).resolve().parents[2]
SID = "CA" + "d" * 32
PATH = "/webhooks/twilio/transcription"


@pytest.fixture
def gworld(db: Any, tmp_path: Path) -> Iterator[World]:
    config = tmp_path / "cfg"
    config.mkdir()
    shutil.copy(ROOT / "config" / "guidance.yaml", config / "guidance.yaml")
    w = build_world(db, tmp_path, config_dir=str(config), transcripts={"source": "twilio"})
    with w.client:
        yield w


def _task(world: World) -> Any:
    world.harness.tick(MON + timedelta(days=2, hours=1))
    with world.engine.connect() as conn:
        return next(t for t in list_tasks(conn) if t.email == PEOPLE[0])


def _cb(event: str, **fields: Any) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": SID,
        "TranscriptionSid": "GT" + "b" * 32,
        "TranscriptionEvent": event,
        "Timestamp": "2026-11-30T16:00:00.000000Z",
    }
    form.update({k: str(v) for k, v in fields.items()})
    return form


def _content(seq: int, text: str, *, track: str = "outbound_track", final: bool = True,
             stability: float = 0.9) -> dict[str, str]:  # fmt: skip
    return _cb(
        "transcription-content",
        Track=track,
        SequenceId=seq,
        LanguageCode="en-US",
        Final="true" if final else "false",
        Stability=stability,
        TranscriptionData=json.dumps({"transcript": text, "confidence": 0.9}),
    )


def _guidance(world: World, sid: str = SID, **headers: str) -> Any:
    return world.client.get(f"/api/calls/{sid}/guidance", headers={"X-API-Key": API_KEY, **headers})


def _published(world: World) -> list[Any]:
    hub = world.client.app.state.live.hub  # type: ignore[attr-defined]
    return [e for e in hub._replay if e.topic == f"call:{SID}"]


def test_signed_callbacks_fire_cards_on_the_call_topic_and_in_the_read_back(gworld):
    task = _task(gworld)
    q = f"?task_id={task.id}&consent=transcribe"
    for form in (
        _cb("transcription-started", LanguageCode="en-US"),
        _content(1, "hello this is sam", track="inbound_track"),
        _content(2, "we already use gong"),  # arrives before seq 1 of its track
        _content(1, "we are struggling with manual work"),
        _content(2, "we already use gong"),  # twice
        _content(3, "what is the pri", final=False, stability=0.2),
        _content(3, "what is the price"),
    ):
        assert gworld.post_twilio(PATH + q, form).status_code == 204
    r = _guidance(gworld)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"call_sid", "status", "segments", "cards", "checklist"}
    assert body["call_sid"] == SID and body["status"] == "live"
    assert [c["tracker"] for c in body["cards"]] == [
        "already-have-vendor", "competitor", "pricing"
    ]  # fmt: skip
    assert body["cards"][0] == {
        "tracker": "already-have-vendor",
        "card": "already-have-vendor",
        "title": body["cards"][0]["title"],
        "said_by": "prospect",
        "at": body["cards"][0]["at"],
        "text": "we already use gong",
    }
    assert body["checklist"]["need"] is True and body["checklist"]["budget"] is False
    segs = {(s["track"], s["seq"]): s for s in body["segments"]}
    assert segs[("outbound_track", 3)]["text"] == "what is the price"
    assert segs[("inbound_track", 1)]["said_by"] == "rep"
    events = _published(gworld)
    assert {e.owner for e in events} == {task.owner_email}
    assert [e.data["tracker"] for e in events if e.kind == "card"] == [
        c["tracker"] for c in body["cards"]
    ]
    card = next(e for e in events if e.kind == "card")
    assert "<a href=" in card.data["html"] or card.data["html"].startswith("<p>")
    provisional = [e for e in events if e.kind == "transcript" and not e.data["final"]]
    assert [e.data["text"] for e in provisional] == ["what is the pri"]
    # The call ends: the screen is told, the read-back says so.
    assert gworld.post_twilio(PATH + q, _cb("transcription-stopped")).status_code == 204
    assert _guidance(gworld).json()["status"] == "ended"
    assert _published(gworld)[-1].kind == "ended"


def test_forged_or_unsigned_callbacks_store_and_show_nothing(gworld):
    task = _task(gworld)
    q = f"?task_id={task.id}"
    form = _content(1, "we already use gong and what is the price")
    assert gworld.client.post(PATH + q, data=form).status_code == 403
    assert gworld.post_twilio(PATH + q, form, token="forged-token").status_code == 403
    assert _guidance(gworld).status_code == 404
    assert _published(gworld) == []


def test_the_read_back_needs_a_key_or_a_session_and_a_real_call(gworld):
    r = gworld.client.get(f"/api/calls/{SID}/guidance")
    assert r.status_code == 401
    assert _guidance(gworld, **{"X-API-Key": "wrong"}).status_code == 401
    assert _guidance(gworld, "CA-no-such-call").status_code == 404
    page = gworld.client.get(f"/calls/{SID}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/signin")
