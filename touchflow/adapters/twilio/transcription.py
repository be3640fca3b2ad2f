"""Twilio Real-Time Transcription and Media Streams, read into vendor-free transcript events.

What was verified, and where (December 2026):

* TwiML ``<Start><Transcription>`` (https://www.twilio.com/docs/voice/twiml/transcription,
  and the ``Transcription`` noun of the ``twilio`` Python library this project
  pins, ``twilio.twiml.voice_response.Start.transcription``): attributes ``track``
  (``inbound_track``, ``outbound_track``, ``both_tracks``), ``statusCallbackUrl``,
  ``statusCallbackMethod``, ``languageCode`` (BCP 47), ``partialResults``,
  ``inboundTrackLabel``/``outboundTrackLabel``, ``transcriptionEngine``, ``hints``.
  The REST twin (CreateRealtimeTranscription,
  https://www.twilio.com/docs/voice/api/realtime-transcription-resource) lists
  the same values of ``Track``.
* The status callback is a form POST with ``TranscriptionEvent``
  (``transcription-started``, ``transcription-content``, ``transcription-stopped``,
  ``transcription-error``), ``CallSid``, ``TranscriptionSid``, ``Track``,
  ``SequenceId``, ``Final``, ``Stability``, ``LanguageCode``, ``Timestamp`` and
  ``TranscriptionData``: a JSON string with ``transcript`` and ``confidence``
  (the TwiML page's statusCallbackUrl section; a public Next.js receiver in
  production use reads exactly ``TranscriptionEvent``, ``CallSid``,
  ``TranscriptionData.transcript``, ``Track`` = ``inbound_track`` for the agent's
  browser leg, ``Timestamp``, ``TranscriptionErrorCode``/``TranscriptionError``).
  Twilio signs it like every webhook (``X-Twilio-Signature``).
* Media Streams (https://www.twilio.com/docs/voice/media-streams/websocket-messages
  and https://www.twilio.com/docs/voice/twiml/stream): ``<Start><Stream url="wss://..."
  track="both_tracks">`` with ``<Parameter name= value=>`` children; messages are JSON
  with ``event``: ``connected`` (``protocol``, ``version``), ``start``
  (``streamSid``; ``start``: ``streamSid``, ``accountSid``, ``callSid``, ``tracks``,
  ``customParameters``, ``mediaFormat`` = audio/x-mulaw, 8000 Hz, 1 channel),
  ``media`` (``media``: ``track`` inbound|outbound, ``chunk``, ``timestamp`` in ms,
  ``payload`` base64 mu-law), ``stop`` (``stop``: ``callSid``), ``mark``, ``dtmf``.
  The WebSocket upgrade carries ``X-Twilio-Signature`` over the ``wss://`` URL
  with no form parameters.

Quirks: ``SequenceId`` counts callbacks of one transcription (partials and
finals share it); ``Final`` and ``Stability`` arrive as strings; ``Timestamp``
is ISO 8601 (we fall back to our clock when it does not parse). Which track is
the rep depends on which leg runs the TwiML: on the click-to-call SDR leg,
``inbound_track`` is the SDR (setting ``TOUCHFLOW_TRANSCRIPTS__REP_TRACK``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from twilio.twiml.voice_response import Start, VoiceResponse

from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.ports import (
    TranscriptEvent,
    TranscriptionStart,
    TranscriptStarted,
    TranscriptStopped,
)

__all__ = ["TwilioTranscription", "start_transcription"]

SOURCE = "twilio"
# What the store keeps (call_transcripts / call_segments columns); a Twilio
# Call SID is 34 characters, a language tag like "en-US" or "fa-IR" a handful.
_MAX_SID = 64
_MAX_TRACK = 32
_MAX_LANGUAGE = 16
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")

_TRACKS = {"inbound": "inbound_track", "outbound": "outbound_track"}


def start_transcription(response: VoiceResponse, plan: TranscriptionStart) -> None:
    """Append the announcement and ``<Start><Transcription|Stream>`` to ``response``."""
    if plan.announcement:
        response.say(plan.announcement, language=plan.language)
    start = Start()
    if plan.source == "media_stream":
        stream = start.stream(url=plan.url, track="both_tracks")
        for name, value in plan.parameters:
            stream.parameter(name=name, value=value)
    else:
        start.transcription(
            track="both_tracks",
            status_callback_url=plan.url,
            status_callback_method="POST",
            language_code=plan.language,
            partial_results="true" if plan.partial_results else "false",
        )
    response.append(start)


def _parse_time(raw: str | None, now: datetime) -> datetime:
    if raw:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return now
        if parsed.tzinfo is not None:
            return parsed
    return now


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "") else None
    except ValueError:
        return None


class _Form:
    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._first: dict[str, str] = {}
        for k, v in items:
            self._first.setdefault(k, v)

    def first(self, key: str) -> str | None:
        return self._first.get(key)


class TwilioTranscription:
    """Twilio's Real-Time Transcription callbacks in touchflow's terms.

    ``rep_track`` is the track the SDR speaks on (``inbound_track`` on the
    click-to-call SDR leg); the other one is the prospect.
    """

    def __init__(self, rep_track: str = "inbound_track") -> None:
        self.rep_track = _TRACKS.get(rep_track, rep_track)

    def speaker(self, track: str) -> Speaker:
        return Speaker.REP if _TRACKS.get(track, track) == self.rep_track else Speaker.PROSPECT

    def events(
        self,
        items: Sequence[tuple[str, str]],
        now: datetime,
        *,
        task_id: int | None = None,
        consent: str | None = None,
    ) -> list[TranscriptEvent] | str:
        """The events one callback carries (none for an empty partial), or why it is refused."""
        p = _Form(items)
        kind = p.first("TranscriptionEvent")
        call_sid = p.first("CallSid")
        if not kind or not call_sid:
            return "TranscriptionEvent and CallSid are required"
        if len(call_sid) > _MAX_SID:
            return f"CallSid is longer than {_MAX_SID} characters"
        at = _parse_time(p.first("Timestamp"), now)
        language = p.first("LanguageCode")
        if language and (len(language) > _MAX_LANGUAGE or not _LANGUAGE_TAG.fullmatch(language)):
            return "LanguageCode is not a language tag (BCP 47, e.g. en-US)"
        if kind == "transcription-started":
            return [
                TranscriptStarted(
                    call_sid=call_sid, at=at, source=SOURCE, language=language,
                    task_id=task_id, consent=consent,
                )
            ]  # fmt: skip
        if kind == "transcription-stopped":
            return [TranscriptStopped(call_sid=call_sid, at=at)]
        if kind == "transcription-error":
            code = p.first("TranscriptionErrorCode") or ""
            error = f"{code} {p.first('TranscriptionError') or ''}".strip() or "error"
            return [TranscriptStopped(call_sid=call_sid, at=at, error=error)]
        if kind != "transcription-content":
            return []  # an event this version does not know: acknowledged, ignored
        track, seq = p.first("Track"), p.first("SequenceId")
        if not track or not seq or not seq.isdigit():
            return "Track and a numeric SequenceId are required"
        if len(track) > _MAX_TRACK or len(seq) > 18:
            return "Track or SequenceId is too long"
        try:
            data = json.loads(p.first("TranscriptionData") or "{}")
        except ValueError:
            return "TranscriptionData is not JSON"
        if not isinstance(data, dict):
            return "TranscriptionData is not a JSON object"
        text = str(data.get("transcript") or "").strip()
        if not text:
            return []
        confidence = data.get("confidence")
        return [
            TranscriptSegment(
                call_sid=call_sid,
                track=_TRACKS.get(track, track),
                seq=int(seq),
                said_by=self.speaker(track),
                text=text,
                final=(p.first("Final") or "").lower() == "true",
                at=at,
                language=language or "en-US",
                confidence=float(confidence) if isinstance(confidence, int | float) else None,
                stability=_float(p.first("Stability")),
            )
        ]
