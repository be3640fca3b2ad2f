"""Transcript segments of a live call, vendor-free.

Every transcript source (Twilio Real-Time Transcription callbacks, Twilio
Media Streams through an offline recogniser) turns what it hears into
:class:`TranscriptSegment` values; the guidance session reads nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Speaker(StrEnum):
    """Who said a segment; which audio track is the rep is configured per source."""

    REP = "rep"
    PROSPECT = "prospect"


@dataclass(frozen=True)
class TranscriptSegment:
    """One piece of speech on one track of a call.

    ``seq`` orders segments within a track (Twilio's ``SequenceId``); the same
    ``(call_sid, track, seq)`` delivered twice is the same segment. A partial
    segment (``final`` false) is provisional: it is shown, and trackers fire on
    it only when its ``stability`` reaches the configured threshold.
    """

    call_sid: str
    track: str
    seq: int
    said_by: Speaker
    text: str
    final: bool
    at: datetime
    language: str = "en"
    confidence: float | None = None
    stability: float | None = None
