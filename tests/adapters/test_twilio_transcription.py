"""Twilio Real-Time Transcription callbacks read into vendor-free transcript events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from touchflow.adapters.twilio.transcription import TwilioTranscription
from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.ports import TranscriptStarted, TranscriptStopped

NOW = datetime(2026, 12, 6, 10, tzinfo=UTC)
BASE = [("CallSid", "CA1"), ("TranscriptionSid", "GT1"), ("Timestamp", "2026-12-06T09:59:58.5Z")]


def _form(event: str, **fields: str) -> list[tuple[str, str]]:
    return [("TranscriptionEvent", event), *BASE, *fields.items()]


def test_content_becomes_a_segment_with_the_configured_rep_track():
    data = json.dumps({"transcript": " what is the price ", "confidence": 0.91})
    form = _form("transcription-content", Track="outbound_track", SequenceId="7",
                 Final="false", Stability="0.62", LanguageCode="de-DE",
                 TranscriptionData=data)  # fmt: skip
    (seg,) = TwilioTranscription("inbound_track").events(form, NOW)
    assert seg == TranscriptSegment(
        call_sid="CA1", track="outbound_track", seq=7, said_by=Speaker.PROSPECT,
        text="what is the price", final=False,
        at=datetime(2026, 12, 6, 9, 59, 58, 500000, tzinfo=UTC),
        language="de-DE", confidence=0.91, stability=0.62,
    )  # fmt: skip
    (seg,) = TwilioTranscription("outbound_track").events(form, NOW)
    assert seg.said_by is Speaker.REP


def test_start_stop_error_and_unknown_events():
    t = TwilioTranscription()
    (start,) = t.events(_form("transcription-started", LanguageCode="en-US"), NOW,
                        task_id=3, consent="announce")  # fmt: skip
    assert start == TranscriptStarted(call_sid="CA1", at=start.at, source="twilio",
                                      language="en-US", task_id=3, consent="announce")  # fmt: skip
    assert t.events(_form("transcription-stopped"), NOW) == [
        TranscriptStopped(call_sid="CA1", at=start.at)
    ]
    (err,) = t.events(_form("transcription-error", TranscriptionErrorCode="32655",
                            TranscriptionError="engine failed"), NOW)  # fmt: skip
    assert err.error == "32655 engine failed"
    assert t.events(_form("transcription-something-new"), NOW) == []


def test_malformed_callbacks_are_refused_with_a_reason():
    t = TwilioTranscription()
    assert isinstance(t.events([("CallSid", "CA1")], NOW), str)
    bad_seq = _form("transcription-content", Track="inbound_track", SequenceId="x")
    assert "SequenceId" in t.events(bad_seq, NOW)
    bad_json = _form("transcription-content", Track="inbound_track", SequenceId="1",
                     TranscriptionData="{not json")  # fmt: skip
    assert "JSON" in t.events(bad_json, NOW)
    # A timestamp that does not parse: our clock.
    form = _form("transcription-content", Track="inbound_track", SequenceId="1",
                 TranscriptionData='{"transcript": "hi"}')  # fmt: skip
    form[3] = ("Timestamp", "yesterday")
    (seg,) = t.events(form, NOW)
    assert seg.at == NOW and seg.final is False and seg.said_by is Speaker.REP
