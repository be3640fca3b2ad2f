"""Call transcripts in through Twilio: signed callbacks recorded once, the bridge starts them
only where consent allows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.api.conftest import PUBLIC_URL, World, build_world
from touchflow.services.call_transcripts import read_call_transcript
from touchflow.store.schema import call_segments, call_transcripts

SID = "CA" + "a" * 32
PATH = "/webhooks/twilio/transcription"
CALLS_YAML = """\
retention_days: 30
default: transcribe
countries:
  US: {consent: announce, language: en-US}
  DE: {consent: announce, language: de-DE}
  IR: 'off'
announcement:
  en: This call is transcribed.
  de: Dieses Gespräch wird transkribiert.
"""


def _world(db: Any, tmp_path: Path, source: str, calls_yaml: str = CALLS_YAML) -> World:
    config = tmp_path / "callcfg"
    config.mkdir(exist_ok=True)
    (config / "calls.yaml").write_text(calls_yaml, encoding="utf-8")
    return build_world(db, tmp_path, config_dir=str(config), transcripts={"source": source})


@pytest.fixture
def tworld(db: Any, tmp_path: Path) -> Iterator[World]:
    w = _world(db, tmp_path, "twilio")
    with w.client:
        yield w


def _cb(event: str, **fields: Any) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": SID,
        "TranscriptionSid": "GT" + "b" * 32,
        "TranscriptionEvent": event,
        "Timestamp": "2026-11-30T16:00:00.000000Z",
        "ProviderName": "google",
    }
    form.update({k: str(v) for k, v in fields.items()})
    return form


def _content(seq: int, text: str, *, final: bool = True, track: str = "outbound_track",
             stability: float = 0.9) -> dict[str, str]:  # fmt: skip
    return _cb(
        "transcription-content",
        Track=track,
        SequenceId=seq,
        LanguageCode="en-US",
        Final="true" if final else "false",
        Stability=stability,
        TranscriptionData=json.dumps({"transcript": text, "confidence": 0.93}),
    )


def _counts(world: World) -> tuple[int, int]:
    with world.engine.connect() as conn:
        calls = conn.execute(select(func.count()).select_from(call_transcripts)).scalar_one()
        segs = conn.execute(select(func.count()).select_from(call_segments)).scalar_one()
    return calls, segs


def _stored(world: World) -> Any:
    with world.engine.connect() as conn:
        return read_call_transcript(conn, SID)


def test_forged_or_unsigned_transcription_callbacks_are_refused_and_store_nothing(tworld):
    params = _content(1, "we use acme")
    assert tworld.client.post(PATH, data=params).status_code == 403
    assert tworld.post_twilio(PATH, params, token="not-the-token").status_code == 403
    signed = tworld.post_twilio(PATH, _content(1, "we use acme"))
    assert signed.status_code == 204
    sig = signed.request.headers["X-Twilio-Signature"]
    tampered = tworld.client.post(
        PATH, data=_content(1, "we use globex"), headers={"X-Twilio-Signature": sig}
    )
    assert tampered.status_code == 403
    assert _counts(tworld) == (1, 1)
    assert _stored(tworld).segments[0].text == "we use acme"


def test_a_call_s_callbacks_twice_and_out_of_order_are_recorded_once_in_sequence(tworld):
    task = _call_task(tworld)
    q = f"?task_id={task.id}&consent=announce"
    sends = [
        _cb("transcription-started", LanguageCode="en-US"),
        _content(2, "what is the", final=False, stability=0.4),
        _content(1, "hi this is sam", track="inbound_track"),
        _content(2, "what is the price"),
        _content(2, "what is the", final=False, stability=0.4),  # late partial
        _content(3, ""),  # an empty partial carries nothing
        _content(1, "hi this is sam", track="inbound_track"),  # redelivery
    ]
    for form in sends:
        r = tworld.post_twilio(PATH + q, form)
        assert r.status_code == 204, r.text
    row = _stored(tworld)
    assert (row.status, row.task_id, row.consent, row.language) == (
        "live", task.id, "announce", "en-US"
    )  # fmt: skip
    got = [(s.track, s.seq, s.said_by.value, s.text, s.final) for s in row.segments]
    assert got == [
        ("inbound_track", 1, "rep", "hi this is sam", True),
        ("outbound_track", 2, "prospect", "what is the price", True),
    ]
    assert row.segments[1].confidence == pytest.approx(0.93)
    # The call ends mid-sentence: the stop ends it once, a trailing final still counts.
    assert tworld.post_twilio(PATH + q, _cb("transcription-stopped")).status_code == 204
    assert tworld.post_twilio(PATH + q, _cb("transcription-stopped")).status_code == 204
    assert tworld.post_twilio(PATH + q, _content(4, "send me a")).status_code == 204
    row = _stored(tworld)
    assert row.status == "ended" and [s.seq for s in row.segments] == [1, 2, 4]


def test_a_callback_missing_its_fields_is_a_400(tworld):
    r = tworld.post_twilio(PATH, {"TranscriptionEvent": "transcription-content"})
    assert r.status_code == 400
    r = tworld.post_twilio(PATH, _cb("transcription-content", Track="inbound_track"))
    assert r.status_code == 400
    assert _counts(tworld) == (0, 0)


def _bridge(world: World, call_task: Any) -> str:
    r = world.post_twilio(f"/twilio/voice/bridge/{call_task.id}", {"CallSid": "CA1"})
    assert r.status_code == 200
    return str(r.text)


def _call_task(world: World) -> Any:
    from datetime import timedelta

    from tests.api.conftest import MON, PEOPLE
    from touchflow.store.tasks import list_tasks

    world.harness.tick(MON + timedelta(days=2, hours=1))
    with world.engine.connect() as conn:
        return next(t for t in list_tasks(conn) if t.email == PEOPLE[0])


def _set_country(world: World, country: str) -> None:
    from tests.api.conftest import PEOPLE
    from touchflow.store.schema import prospects

    with world.engine.begin() as conn:
        conn.execute(
            prospects.update().where(prospects.c.email == PEOPLE[0]).values(country=country)
        )


def test_the_bridge_announces_then_starts_twilio_transcription_where_consent_allows(tworld):
    task = _call_task(tworld)
    twiml = _bridge(tworld, task)
    say, start, dial = twiml.index("<Say"), twiml.index("<Start>"), twiml.index("<Dial")
    assert say < start < dial  # announced before anything is transcribed or bridged
    assert 'language="en-US">This call is transcribed.</Say>' in twiml
    assert 'track="both_tracks"' in twiml and 'languageCode="en-US"' in twiml
    callback = f'statusCallbackUrl="{PUBLIC_URL}{PATH}?task_id={task.id}&amp;consent=announce"'
    assert callback in twiml
    _set_country(tworld, "DE")
    twiml = _bridge(tworld, task)
    assert "Dieses Gespräch wird transkribiert." in twiml and 'languageCode="de-DE"' in twiml
    _set_country(tworld, "IR")  # consent: off
    twiml = _bridge(tworld, task)
    assert "<Start>" not in twiml and "<Say" not in twiml and "<Dial" in twiml
    _set_country(tworld, "GB")  # default: transcribe, no announcement
    twiml = _bridge(tworld, task)
    assert "<Start>" in twiml and "<Say" not in twiml


def test_no_transcription_when_the_source_is_off(db, tmp_path):
    w = _world(db, tmp_path, "off")
    with w.client:
        assert "<Start>" not in _bridge(w, _call_task(w))


def test_no_transcription_when_the_consent_file_is_broken(db, tmp_path):
    broken = _world(db, tmp_path, "twilio", "countries:\n  US: maybe\n")
    with broken.client:
        twiml = _bridge(broken, _call_task(broken))
        assert "<Start>" not in twiml and "<Dial" in twiml


def test_the_media_stream_variant_streams_both_tracks_to_our_socket(db, tmp_path):
    w = _world(db, tmp_path, "media_stream")
    with w.client:
        task = _call_task(w)
        twiml = _bridge(w, task)
    assert '<Stream track="both_tracks" url="wss://hooks.touchflow.example/media-stream">' in twiml
    assert f'<Parameter name="task_id" value="{task.id}" />' in twiml
    assert '<Parameter name="consent" value="announce" />' in twiml
