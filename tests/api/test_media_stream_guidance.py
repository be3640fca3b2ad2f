"""Guidance from the self-hosted path: a Media Stream dropped and reconnected (Twilio sends
the stream again) fires every card once, in order, as one uninterrupted call would."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from tests.api.conftest import make_settings
from tests.api.test_media_stream import _WS, SID, Served, _free_port, _send_all, _wait_closed
from tests.support.speech import CONNECTED, media_messages, say_mulaw, start_message, stop_message
from touchflow.adapters.speech import MediaStreamTranscriber, PocketsphinxRecognizer
from touchflow.domain.guidance import CallSession, CardFired, load_guidance
from touchflow.domain.transcripts import TranscriptSegment
from touchflow.entrypoints.api import create_app
from touchflow.services.call_guidance import guidance_state

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 16, tzinfo=UTC)
PROSPECT = ("we already use competitor acme", "what is the price")


@pytest.fixture
def served(db: Engine, tmp_path: Path) -> Iterator[tuple[Served, Any]]:
    config = tmp_path / "cfg"
    config.mkdir()
    shutil.copy(ROOT / "config" / "guidance.yaml", config / "guidance.yaml")
    port = _free_port()
    settings = make_settings(public_url=f"http://127.0.0.1:{port}", config_dir=str(config),
                             transcripts={"source": "media_stream"})  # fmt: skip
    app = create_app(settings, engine=db, clock=lambda: NOW)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws=_WS, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield Served(db, port), app
    server.should_exit = True
    thread.join(10)


def _uninterrupted(audio: bytes) -> list[str]:
    """The cards one session fires on what the recogniser hears in the whole stream."""
    reader = MediaStreamTranscriber(PocketsphinxRecognizer, lambda: NOW)
    reader.message({"event": "start", "start": {"callSid": SID, "customParameters": {}}})
    events: list[Any] = []
    for m in media_messages(audio, "outbound"):
        events += reader.message(json.loads(m))
    events += reader.finish(stopped=True)
    session = CallSession(load_guidance(ROOT / "config" / "guidance.yaml"), SID, NOW)
    out: list[Any] = []
    for e in events:
        if isinstance(e, TranscriptSegment):
            out += session.receive(e, NOW)
    out += session.end(NOW)
    return [e.tracker for e in out if isinstance(e, CardFired)]


def test_a_dropped_and_reconnected_stream_fires_every_card_once_in_order(served):
    srv, app = served
    audio = say_mulaw(*PROSPECT)
    frames = media_messages(audio, "outbound")
    cut = int(len(frames) * 0.8)  # inside the second utterance
    with srv.connect() as ws:
        _send_all(ws, [CONNECTED, start_message(SID), *frames[:cut]])
    deadline = time.monotonic() + 30
    while srv.counts()[1] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with srv.connect() as ws:  # Twilio sends the stream again from the start, then ends
        _send_all(ws, [CONNECTED, start_message(SID), *frames, stop_message(SID)])
        _wait_closed(ws)
    expected = _uninterrupted(audio)
    assert "pricing" in expected, expected  # the recogniser heard the price question
    with srv.engine.connect() as conn:
        state = guidance_state(conn, None, SID)
    assert state is not None and state["status"] == "ended"
    assert [c["tracker"] for c in state["cards"]] == expected
    hub = app.state.live.hub
    shown = [e.data["tracker"] for e in hub._replay if e.kind == "card"]
    assert shown == expected  # published once each, in order
