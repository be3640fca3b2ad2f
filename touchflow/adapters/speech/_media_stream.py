"""A Twilio Media Stream's messages -> transcript events (see the Twilio adapter's docstring).

``seq`` of a segment is where its utterance starts on the track's clock, in
milliseconds (the ``timestamp`` of the stream's first media frame plus the
recogniser's offset). A stream that dropped and was sent again from the same
point yields the same utterances at the same ``seq``: the store keeps them once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from touchflow.adapters.speech._audio import mulaw_decode, pcm_bytes, upsample_8k_to_16k
from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.ports import (
    SpeechRecognizer,
    TranscriptEvent,
    TranscriptStarted,
    TranscriptStopped,
    Utterance,
)

SOURCE = "media_stream"
_TRACKS = {"inbound": "inbound_track", "outbound": "outbound_track"}


class StreamRefused(ValueError):
    """A message that is not a Media Stream message (the socket is closed)."""


@dataclass
class _Track:
    recognizer: SpeechRecognizer
    first_ms: int | None = None
    last_sample: int = 0
    audio_ms: float = 0.0
    utterances: list[Utterance] = field(default_factory=list)


class MediaStreamTranscriber:
    """One Media Stream connection: messages in, transcript events out.

    ``recognizer`` makes a recogniser per track; ``rep_track`` is the SDR's
    (``inbound_track`` on the click-to-call SDR leg); ``now`` stamps events.
    """

    def __init__(
        self,
        recognizer: Callable[[], SpeechRecognizer],
        now: Callable[[], datetime],
        *,
        rep_track: str = "inbound_track",
        language: str = "en-US",
    ) -> None:
        self._make = recognizer
        self._now = now
        self._rep = _TRACKS.get(rep_track, rep_track)
        self.language = language
        self.call_sid: str | None = None
        self.task_id: int | None = None
        self.custom: dict[str, str] = {}
        self._tracks: dict[str, _Track] = {}
        self._started_at: datetime | None = None
        self.audio_seconds = 0.0  # for the real-time factor

    def message(self, msg: Mapping[str, Any]) -> list[TranscriptEvent]:
        """Apply one decoded JSON message; the events it completed."""
        kind = msg.get("event")
        if kind == "connected":
            return []
        if kind == "start":
            start = msg.get("start")
            if not isinstance(start, Mapping) or not isinstance(start.get("callSid"), str):
                raise StreamRefused("a start message without start.callSid")
            self.call_sid = start["callSid"]
            params = start.get("customParameters")
            self.custom = {str(k): str(v) for k, v in (params or {}).items()}
            task = self.custom.get("task_id", "")
            self.task_id = int(task) if task.isdigit() else None
            self.language = self.custom.get("language", self.language)
            self._started_at = self._now()
            return [
                TranscriptStarted(
                    call_sid=self.call_sid, at=self._started_at, source=SOURCE,
                    language=self.language, task_id=self.task_id,
                    consent=self.custom.get("consent"),
                )
            ]  # fmt: skip
        if kind == "media":
            return self._media(msg.get("media"))
        if kind == "stop":
            return self.finish(stopped=True)
        if kind in ("mark", "dtmf"):
            return []
        raise StreamRefused(f"unknown Media Stream event {kind!r}")

    def _media(self, media: Any) -> list[TranscriptEvent]:
        if self.call_sid is None:
            raise StreamRefused("media before start")
        if not isinstance(media, Mapping) or not isinstance(media.get("payload"), str):
            raise StreamRefused("a media message without media.payload")
        name = _TRACKS.get(str(media.get("track", "inbound")), str(media.get("track")))
        try:
            mulaw = base64.b64decode(media["payload"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StreamRefused("media.payload is not base64") from exc
        track = self._tracks.get(name)
        if track is None:
            track = self._tracks[name] = _Track(self._make())
        if track.first_ms is None:
            ts = str(media.get("timestamp", "0"))
            track.first_ms = int(ts) if ts.isdigit() else 0
        samples = mulaw_decode(mulaw)
        pcm = upsample_8k_to_16k(samples, track.last_sample)
        if samples:
            track.last_sample = samples[-1]
        seconds = len(samples) / 8000
        track.audio_ms += seconds * 1000
        self.audio_seconds += seconds
        return self._segments(name, track, track.recognizer.feed(pcm_bytes(pcm)))

    def _segments(
        self, name: str, track: _Track, heard: list[Utterance], *, final: bool = True
    ) -> list[TranscriptEvent]:
        assert self.call_sid is not None
        base = self._started_at or self._now()
        out: list[TranscriptEvent] = []
        for u in heard:
            seq = (track.first_ms or 0) + u.start_ms
            out.append(
                TranscriptSegment(
                    call_sid=self.call_sid,
                    track=name,
                    seq=seq,
                    said_by=Speaker.REP if name == self._rep else Speaker.PROSPECT,
                    text=u.text,
                    final=final,
                    at=base + timedelta(milliseconds=seq),
                    language=self.language,
                    confidence=u.confidence,
                )
            )
        return out

    def finish(self, *, stopped: bool = False) -> list[TranscriptEvent]:
        """The stream ended (``stop``) or the socket dropped: flush every track.

        Only a ``stop`` ends the call's transcript, and makes the words still
        pending final. A dropped socket may be reconnected and the audio sent
        again: what it cut off is kept as a partial, which the complete
        utterance (same ``seq``) then replaces.
        """
        out: list[TranscriptEvent] = []
        for name, track in self._tracks.items():
            out += self._segments(name, track, track.recognizer.finish(), final=stopped)
        self._tracks.clear()
        if stopped and self.call_sid is not None:
            out.append(TranscriptStopped(call_sid=self.call_sid, at=self._now()))
        return out
