"""Call transcripts: what the transcript sources heard, recorded once, and what was new.

Both sources (Twilio Real-Time Transcription callbacks, a Twilio Media Stream
through the offline recogniser) publish :data:`~touchflow.ports.TranscriptEvent`
values through :class:`CallTranscripts`, the :class:`~touchflow.ports.TranscriptStream`
port. Recording is idempotent (the store's upserts decide): the same
``(call_sid, track, seq)`` twice is stored once, a later final replaces a
partial of the same ``seq``, a late partial never replaces a final, a second
stop is no news. :meth:`CallTranscripts.publish` returns the events that
changed something, in the order applied; ``on_new`` gets them after the
commit (the live guidance hub plugs in there), never inside the transaction.

Retention: :func:`purge_transcripts` deletes what is older than the consent
config's ``retention_days`` (``touchflow guidance purge``, the daily flow).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from touchflow.domain.transcripts import TranscriptSegment
from touchflow.ports import TranscriptEvent, TranscriptStarted, TranscriptStopped
from touchflow.store.call_transcripts import (
    CallTranscriptRow,
    end_call,
    purge_before,
    read_transcript,
    start_call,
    upsert_segment,
)

__all__ = [
    "CallTranscripts",
    "purge_old_transcripts",
    "purge_transcripts",
    "read_call_transcript",
    "record_events",
]

#: Who gets the new events after the commit.
OnNew = Callable[[list[TranscriptEvent]], None]
#: Who hears that calls ended (their sids, the stop's time), after the commit: the
#: after-call summary (:class:`touchflow.services.call_summaries.CallSummaries`).
OnEnded = Callable[[list[str], datetime], object]


def record_events(
    conn: Connection, events: Sequence[TranscriptEvent], *, source: str
) -> list[TranscriptEvent]:
    """Record ``events`` in ``conn``'s transaction; the ones that were new, in order.

    Segments of one publish are applied in ``(track, seq)`` order, so a batch
    that arrived shuffled is stored (and handed on) in sequence order.
    """
    new: list[TranscriptEvent] = []
    ordered = sorted(
        enumerate(events),
        key=lambda ie: (
            (1, ie[1].track, ie[1].seq, ie[0])
            if isinstance(ie[1], TranscriptSegment)
            else (0 if isinstance(ie[1], TranscriptStarted) else 2, "", 0, ie[0])
        ),
    )
    for _, ev in ordered:
        if isinstance(ev, TranscriptStarted):
            changed = start_call(
                conn,
                ev.call_sid,
                ev.at,
                source=ev.source,
                language=ev.language,
                task_id=ev.task_id,
                consent=ev.consent,
            )
        elif isinstance(ev, TranscriptStopped):
            changed = end_call(conn, ev.call_sid, ev.at, source=source)
        else:
            changed = upsert_segment(conn, ev, source=source)
        if changed:
            new.append(ev)
    return new


class CallTranscripts:
    """:class:`~touchflow.ports.TranscriptStream` on the store: one transaction per publish.

    ``source`` names where events come from when a segment arrives before its
    call's start (``twilio`` or ``media_stream``); ``on_new`` is called with
    what was new, after the commit, when there is anything; ``on_ended`` with the calls
    whose stop was news (a second stop is not), after ``on_new``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        source: str = "twilio",
        on_new: OnNew | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        self._engine = engine
        self._source = source
        self.on_new = on_new
        self.on_ended = on_ended

    @property
    def source(self) -> str:
        """Where a segment comes from when it arrives before its call's start."""
        return self._source

    def publish(self, events: Sequence[TranscriptEvent]) -> list[TranscriptEvent]:
        if not events:
            return []
        with self._engine.begin() as conn:
            new = record_events(conn, events, source=self._source)
        if new and self.on_new is not None:
            self.on_new(new)
        stopped = [ev for ev in new if isinstance(ev, TranscriptStopped)]
        if stopped and self.on_ended is not None:
            self.on_ended([ev.call_sid for ev in stopped], max(ev.at for ev in stopped))
        return new


def read_call_transcript(conn: Connection, call_sid: str) -> CallTranscriptRow | None:
    """The stored transcript of a call (None: nothing recorded)."""
    return read_transcript(conn, call_sid)


def purge_transcripts(conn: Connection, now: datetime, retention_days: int) -> tuple[int, int]:
    """Delete transcripts older than ``retention_days``: (calls, segments) deleted."""
    if retention_days < 0:
        raise ValueError("retention_days must be 0 or more")
    return purge_before(conn, now - timedelta(days=retention_days))


def purge_old_transcripts(engine: Engine, now: datetime, retention_days: int) -> tuple[int, int]:
    """:func:`purge_transcripts` in its own transaction (the CLI and the daily flow)."""
    with engine.begin() as conn:
        return purge_transcripts(conn, now, retention_days)
