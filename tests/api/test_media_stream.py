"""Self-hosted transcripts: a Twilio Media Stream over a real WebSocket into the offline
recogniser, on a real uvicorn; the audio is speech espeak-ng made, in Twilio's format."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
import uvicorn.config
from sqlalchemy import Engine, func, select
from twilio.request_validator import RequestValidator
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.api.conftest import TWILIO_TOKEN, make_settings
from tests.support.speech import (
    CONNECTED,
    media_messages,
    say_mulaw,
    start_message,
    stop_message,
)
from touchflow.adapters.speech import MediaStreamTranscriber, PocketsphinxRecognizer
from touchflow.entrypoints.api import create_app
from touchflow.ports import TranscriptStopped
from touchflow.services.call_transcripts import read_call_transcript
from touchflow.store.schema import call_segments, call_transcripts

SID = "CA" + "c" * 32
NOW = datetime(2026, 11, 30, 16, tzinfo=UTC)
PROSPECT = ("we already use competitor acme", "what is the price")
# uvicorn's own implementation on the websockets package (its legacy one is deprecated).
_WS = "websockets-sansio" if "websockets-sansio" in uvicorn.config.WS_PROTOCOLS else "websockets"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, engine: Engine, port: int) -> None:
        self.engine = engine
        self.url = f"ws://127.0.0.1:{port}/media-stream"

    def connect(self, *, token: str | None = TWILIO_TOKEN, url: str | None = None) -> Any:
        headers = {}
        if token is not None:
            sig = RequestValidator(token).compute_signature(url or self.url, {})
            headers["X-Twilio-Signature"] = sig
        return connect(self.url, additional_headers=headers, open_timeout=10)

    def counts(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            calls = conn.execute(select(func.count()).select_from(call_transcripts)).scalar_one()
            segs = conn.execute(select(func.count()).select_from(call_segments)).scalar_one()
        return calls, segs

    def transcript(self) -> Any:
        with self.engine.connect() as conn:
            return read_call_transcript(conn, SID)


@pytest.fixture
def served(db: Engine) -> Iterator[Served]:
    port = _free_port()
    settings = make_settings(public_url=f"http://127.0.0.1:{port}",
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
    yield Served(db, port)
    server.should_exit = True
    thread.join(10)


def _send_all(ws: ClientConnection, messages: list[str]) -> None:
    for m in messages:
        ws.send(m)


def _wait_closed(ws: ClientConnection) -> None:
    """The server closes after ``stop``, once everything is recorded."""
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=60)


def _offline(audio: dict[str, bytes]) -> list[tuple[str, int, str]]:
    """What the recogniser hears in the same audio, without any socket or store."""
    reader = MediaStreamTranscriber(PocketsphinxRecognizer, lambda: NOW)
    reader.message({"event": "start", "start": {"callSid": SID, "customParameters": {}}})
    import json

    events = []
    for track, data in audio.items():
        for m in media_messages(data, track):
            events += reader.message(json.loads(m))
    events += reader.finish(stopped=True)
    return sorted((e.track, e.seq, e.text) for e in events if not isinstance(e, TranscriptStopped))


def test_a_forged_or_unsigned_upgrade_is_refused_before_accept_and_stores_nothing(served):
    audio = media_messages(b"\xff" * 1600, "inbound")
    for attempt in (
        {"token": None},  # unsigned
        {"token": "not-the-token"},  # forged
        {"url": "wss://elsewhere.example/media-stream"},  # signed for another URL
    ):
        with pytest.raises(InvalidStatus) as refused, served.connect(**attempt) as ws:
            _send_all(ws, [start_message(SID), *audio])
        assert refused.value.response.status_code == 403
    assert served.counts() == (0, 0)


def test_speech_in_a_media_stream_becomes_final_segments_per_speaker(served):
    prospect = say_mulaw(*PROSPECT)
    rep = say_mulaw("hello")
    with served.connect() as ws:
        _send_all(ws, [CONNECTED, start_message(SID, task_id="", consent="transcribe")])
        # Twilio interleaves the tracks frame by frame.
        inbound, outbound = media_messages(rep, "inbound"), media_messages(prospect, "outbound")
        for i in range(max(len(inbound), len(outbound))):
            _send_all(ws, inbound[i : i + 1] + outbound[i : i + 1])
        ws.send(stop_message(SID))
        _wait_closed(ws)
    row = served.transcript()
    assert row.status == "ended" and row.source == "media_stream" and row.consent == "transcribe"
    said = " ".join(s.text for s in row.segments if s.said_by.value == "prospect")
    # pocketsphinx is rough on telephone audio: the key words, not every word.
    assert "already" in said and "price" in said, said
    assert all(s.final for s in row.segments)
    prospect_segs = [s for s in row.segments if s.track == "outbound_track"]
    assert len(prospect_segs) == 2  # one per utterance: the pause ended the first
    assert prospect_segs[0].seq < prospect_segs[1].seq
    assert {s.said_by.value for s in row.segments if s.track == "inbound_track"} <= {"rep"}


def test_a_dropped_and_reconnected_stream_stores_each_segment_once(served):
    prospect = say_mulaw(*PROSPECT)
    frames = media_messages(prospect, "outbound")
    cut = int(len(frames) * 0.8)  # inside the second utterance
    with served.connect() as ws:
        _send_all(ws, [CONNECTED, start_message(SID), *frames[:cut]])
    # The socket dropped (no stop): what was heard is kept, the call still live.
    deadline = time.monotonic() + 30
    while served.counts()[1] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    row = served.transcript()
    assert row.status == "live"
    assert [s.final for s in row.segments] == [True, False]  # the cut utterance is partial
    # Twilio's stream is sent again from the start (same timestamps), then ends.
    with served.connect() as ws:
        _send_all(ws, [CONNECTED, start_message(SID), *frames, stop_message(SID)])
        _wait_closed(ws)
    row = served.transcript()
    stored = sorted((s.track, s.seq, s.text) for s in row.segments)
    assert stored == _offline({"outbound": prospect})  # each utterance once, complete
    assert all(s.final for s in row.segments) and row.status == "ended"


def test_a_call_ending_mid_sentence_keeps_the_words_as_final(served):
    prospect = say_mulaw(*PROSPECT)
    frames = media_messages(prospect, "outbound")
    cut = int(len(frames) * 0.8)  # the prospect is cut off mid-question
    with served.connect() as ws:
        _send_all(ws, [CONNECTED, start_message(SID), *frames[:cut], stop_message(SID)])
        _wait_closed(ws)
    row = served.transcript()
    assert row.status == "ended" and len(row.segments) == 2
    assert all(s.final for s in row.segments) and row.segments[1].text


def test_the_recogniser_keeps_up_with_real_time(capsys):
    """Real-time factor = CPU seconds per second of audio (CPU, not wall: the machine is
    shared); the model is loaded before the clock starts (once per track, ~0.5 s)."""
    import json

    audio = say_mulaw(*PROSPECT, "can you send me a proposal")
    reader = MediaStreamTranscriber(PocketsphinxRecognizer, lambda: NOW)
    reader.message({"event": "start", "start": {"callSid": SID, "customParameters": {}}})
    messages = [json.loads(m) for m in media_messages(audio, "outbound")]
    reader.message(messages[0])  # loads the model
    cpu, wall = time.process_time(), time.perf_counter()
    heard = []
    for m in messages[1:]:
        heard += reader.message(m)
    heard += reader.finish(stopped=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    seconds = reader.audio_seconds
    with capsys.disabled():
        print(f"\npocketsphinx real-time factor: {cpu / seconds:.3f} CPU, {wall / seconds:.3f} "
              f"wall ({cpu:.2f} s CPU for {seconds:.2f} s of audio)")  # fmt: skip
    assert len(heard) == 4  # three utterances and the stop
    assert cpu / seconds < 1.0, f"the recogniser is slower than real time: {cpu / seconds:.2f}"
