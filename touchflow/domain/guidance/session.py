"""One live call: transcript segments in, cards and checklist ticks out (pure).

:class:`CallSession` takes :class:`~touchflow.domain.transcripts.TranscriptSegment` values in
whatever order and as often as a transcript source delivers them, and emits typed events
(:class:`TranscriptUpdate`, :class:`CardFired`, :class:`ChecklistChanged`,
:class:`CallEnded`) in a deterministic order. Time comes in as arguments: ``now`` is when a
segment arrived (for the reorder timeout) and when :meth:`CallSession.tick` runs; a
segment's own ``at`` is when it was said (for cooldowns and the summary).

Ordering, per track. Segments are applied in ``seq`` order; a segment ahead of the next
expected ``seq`` is held until the gap fills, or until it has waited ``reorder_timeout_s``
(checked on every :meth:`~CallSession.receive`, :meth:`~CallSession.flush` and
:meth:`~CallSession.tick`), when the session gives up on the missing numbers and passes it
on: a lost segment never blocks a call. One that turns up after its place was given up on is
applied when it arrives.

Partials. The partial results of an utterance carry the ``seq`` its final will have. A
partial is shown (a provisional :class:`TranscriptUpdate`) and holds its place until the
final arrives; trackers fire on it only when its ``stability`` reaches
``partial_stability``. A tracker fires at most once per ``(track, seq)``: the final of a
partial that already fired it does not fire it again. A final arrived, anything more for its
``(track, seq)`` is a duplicate and ignored; so is a partial repeated word for word.
:meth:`~CallSession.end` treats the last partial of an utterance whose final never came as
final (the call ended mid-sentence: what was heard still counts).

Determinism. Within a track the cards depend only on which segments arrived, not on their
order or repetitions (``tests/domain/test_guidance_session.py`` checks this with
hypothesis), as long as stable partials are not involved: a stable partial fires *before*
its final on purpose, so what it fires depends on whether it came first. Across tracks the
cards come in the order the tracks' segments were applied: the screen cannot wait for the
other party's transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from touchflow.domain.guidance.config import Guidance, LinkSpec, TrackerSpec
from touchflow.domain.guidance.matcher import Hit
from touchflow.domain.transcripts import Speaker, TranscriptSegment

__all__ = [
    "CallEnded",
    "CallSession",
    "CardFired",
    "ChecklistChanged",
    "GuidanceEvent",
    "TrackerHit",
    "TranscriptUpdate",
]


def _iso(at: datetime) -> str:
    return at.isoformat()


@dataclass(frozen=True)
class TranscriptUpdate:
    """A segment to show (or to replace the provisional text of the same ``(track, seq)``)."""

    call_sid: str
    track: str
    seq: int
    said_by: Speaker
    text: str
    final: bool
    at: datetime
    kind: Literal["transcript"] = "transcript"

    @property
    def provisional(self) -> bool:
        """A partial result: the text may still change."""
        return not self.final

    def to_dict(self) -> dict[str, Any]:
        """The read-back API's segment shape."""
        return {
            "seq": self.seq,
            "track": self.track,
            "said_by": self.said_by.value,
            "text": self.text,
            "final": self.final,
            "at": _iso(self.at),
        }


@dataclass(frozen=True)
class CardFired:
    """A tracker fired: show its card.

    ``text`` is what was said that fired it (empty for a ``not_said_within`` tracker, whose
    ``at`` is its deadline and whose ``said_by`` is the speaker it waited for); ``body`` and
    ``links`` are the card's Markdown and links.
    """

    call_sid: str
    tracker: str
    card: str
    title: str
    said_by: str
    at: datetime
    text: str
    body: str = ""
    links: tuple[LinkSpec, ...] = ()
    track: str | None = None
    seq: int | None = None
    kind: Literal["card"] = "card"

    def to_dict(self) -> dict[str, Any]:
        """The read-back API's card shape, plus the card's body and links."""
        return {
            "tracker": self.tracker,
            "card": self.card,
            "title": self.title,
            "said_by": self.said_by,
            "at": _iso(self.at),
            "text": self.text,
            "body": self.body,
            "links": [{"label": link.label, "url": link.url} for link in self.links],
        }


@dataclass(frozen=True)
class ChecklistChanged:
    """A checklist item was ticked (its tracker was heard)."""

    call_sid: str
    item: str
    label: str
    checked: bool
    tracker: str
    at: datetime
    kind: Literal["checklist"] = "checklist"


@dataclass(frozen=True)
class CallEnded:
    """The session is closed; nothing more will be emitted."""

    call_sid: str
    at: datetime
    kind: Literal["ended"] = "ended"


GuidanceEvent = TranscriptUpdate | CardFired | ChecklistChanged | CallEnded


@dataclass(frozen=True)
class TrackerHit:
    """A tracker heard: which phrase, who said it, when, in which segment."""

    tracker: str
    phrase: str
    language: str
    said_by: Speaker
    at: datetime
    track: str
    seq: int
    text: str


@dataclass
class _Track:
    next_seq: int
    # seq -> the delivery held for it (a final replaces a partial), and since when.
    held: dict[int, TranscriptSegment] = field(default_factory=dict)
    held_since: dict[int, datetime] = field(default_factory=dict)
    finals: set[int] = field(default_factory=set)
    # seq -> the last partial applied, for as long as its final has not come.
    partials: dict[int, TranscriptSegment] = field(default_factory=dict)
    fired: dict[int, set[str]] = field(default_factory=dict)


class CallSession:
    """The guidance state of one call (see the module docstring for the rules)."""

    def __init__(
        self,
        guidance: Guidance,
        call_sid: str,
        started_at: datetime,
        *,
        first_seq: int = 1,
    ) -> None:
        """``started_at``: when the call was answered (``not_said_within`` counts from it);
        ``first_seq``: the number a track's first segment has."""
        self.guidance = guidance
        self.call_sid = call_sid
        self.started_at = started_at
        self.ended_at: datetime | None = None
        self._first_seq = first_seq
        self._tracks: dict[str, _Track] = {}
        self._segments: dict[tuple[str, int], TranscriptSegment] = {}
        self._cards: list[CardFired] = []
        self._hits: list[TrackerHit] = []
        self._first_heard: dict[str, datetime] = {}
        self._card_count: dict[str, int] = {}
        self._last_card: dict[str, datetime] = {}
        file = guidance.file
        self._checklist: dict[str, bool] = {item.id: False for item in file.checklist}
        self._not_said = sorted(
            (
                (started_at + timedelta(seconds=spec.not_said_within), -spec.priority, tid)
                for tid, spec in file.trackers.items()
                if spec.not_said_within is not None
            ),
        )
        self._nudged: set[str] = set()

    # ------------------------------------------------------------------ reading back

    @property
    def status(self) -> Literal["live", "ended"]:
        """``ended`` once :meth:`end` ran."""
        return "ended" if self.ended_at is not None else "live"

    @property
    def segments(self) -> list[TranscriptSegment]:
        """The latest version of every applied segment, in the order they were first shown."""
        return list(self._segments.values())

    @property
    def cards(self) -> list[CardFired]:
        """Every card fired, in order."""
        return list(self._cards)

    @property
    def hits(self) -> list[TrackerHit]:
        """Every tracker heard (said by the right speaker), in order."""
        return list(self._hits)

    @property
    def checklist(self) -> dict[str, bool]:
        """Checklist item id -> ticked, in the file's order."""
        return dict(self._checklist)

    def state(self) -> dict[str, Any]:
        """``GET /api/calls/{call_sid}/guidance``: what the live screen shows."""
        return {
            "call_sid": self.call_sid,
            "status": self.status,
            "segments": [
                TranscriptUpdate(
                    s.call_sid, s.track, s.seq, s.said_by, s.text, s.final, s.at
                ).to_dict()
                for s in self._segments.values()
            ],
            "cards": [card.to_dict() for card in self._cards],
            "checklist": dict(self._checklist),
        }

    # ------------------------------------------------------------------ input

    def receive(self, segment: TranscriptSegment, now: datetime) -> list[GuidanceEvent]:
        """Take one delivered segment (arrived at ``now``); the events it causes, in order."""
        if segment.call_sid != self.call_sid:
            raise ValueError(
                f"segment of call {segment.call_sid!r} given to the session of {self.call_sid!r}"
            )
        if self.ended_at is not None:
            return []
        track = self._tracks.get(segment.track)
        if track is None:
            track = self._tracks[segment.track] = _Track(next_seq=self._first_seq)
        if self._duplicate(track, segment):
            return []
        events: list[GuidanceEvent] = []
        if segment.seq < track.next_seq:
            events += self._apply(track, segment)  # late: its place was given up on
        elif segment.seq == track.next_seq:
            events += self._apply(track, segment)
            if segment.final:
                track.next_seq += 1
                events += self._drain(track)
        else:
            held = track.held.get(segment.seq)
            if held is None or not held.final:
                track.held[segment.seq] = segment
            track.held_since.setdefault(segment.seq, now)
        events += self.flush(now)
        return events

    def flush(self, now: datetime) -> list[GuidanceEvent]:
        """Pass on segments held longer than ``reorder_timeout_s``: the gap is given up on."""
        timeout = timedelta(seconds=self.guidance.file.reorder_timeout_s)
        events: list[GuidanceEvent] = []
        for name in sorted(self._tracks):
            track = self._tracks[name]
            while track.held and min(track.held_since.values()) + timeout <= now:
                track.next_seq = min(track.held)
                events += self._drain(track)
        return events

    def tick(self, now: datetime) -> list[GuidanceEvent]:
        """:meth:`flush`, then fire the ``not_said_within`` trackers whose time is up."""
        if self.ended_at is not None:
            return []
        return self.flush(now) + self._nudge(now)

    def end(self, now: datetime) -> list[GuidanceEvent]:
        """Apply everything held, count unfinished utterances as said, nudge, and close."""
        if self.ended_at is not None:
            return []
        events: list[GuidanceEvent] = []
        for name in sorted(self._tracks):
            track = self._tracks[name]
            pending = sorted(set(track.held) | set(track.partials))
            for seq in pending:
                segment = track.held.pop(seq, None) or track.partials.get(seq)
                if segment is None or seq in track.finals:
                    continue
                events += self._apply(track, replace(segment, final=True))
            track.held_since.clear()
            if pending:
                track.next_seq = max(track.next_seq, pending[-1] + 1)
        events += self._nudge(now)
        self.ended_at = now
        events.append(CallEnded(self.call_sid, now))
        return events

    # ------------------------------------------------------------------ rules

    def _duplicate(self, track: _Track, segment: TranscriptSegment) -> bool:
        """A final already in, or a partial with nothing new (same words, no more stable)."""
        if segment.seq in track.finals:
            return True
        held = track.held.get(segment.seq)
        if held is not None and held.final:
            return True
        if segment.final:
            return False
        last = held or track.partials.get(segment.seq)
        return (
            last is not None
            and last.text == segment.text
            and (self._fires(last) or not self._fires(segment))
        )

    def _drain(self, track: _Track) -> list[GuidanceEvent]:
        events: list[GuidanceEvent] = []
        while track.next_seq in track.held:
            segment = track.held.pop(track.next_seq)
            track.held_since.pop(track.next_seq, None)
            if segment.seq in track.finals:
                track.next_seq += 1
                continue
            events += self._apply(track, segment)
            if not segment.final:
                break
            track.next_seq += 1
        return events

    def _fires(self, segment: TranscriptSegment) -> bool:
        if segment.final:
            return True
        threshold = self.guidance.file.partial_stability
        return segment.stability is not None and segment.stability >= threshold

    def _apply(self, track: _Track, segment: TranscriptSegment) -> list[GuidanceEvent]:
        if segment.final:
            track.finals.add(segment.seq)
            track.partials.pop(segment.seq, None)
        else:
            track.partials[segment.seq] = segment
        self._segments[(segment.track, segment.seq)] = segment
        events: list[GuidanceEvent] = [
            TranscriptUpdate(
                self.call_sid,
                segment.track,
                segment.seq,
                segment.said_by,
                segment.text,
                segment.final,
                segment.at,
            )
        ]
        if not self._fires(segment):
            return events
        trackers = self.guidance.file.trackers
        already = track.fired.setdefault(segment.seq, set())
        fresh: list[tuple[Hit, TrackerSpec]] = []
        matcher = self.guidance.matcher
        for hit in matcher.match(segment.text, self.guidance.languages_for(segment.language)):
            spec = trackers[hit.tracker]
            if hit.tracker in already or spec.said_by not in ("anyone", segment.said_by.value):
                continue
            already.add(hit.tracker)
            fresh.append((hit, spec))
        fresh.sort(key=lambda pair: (-pair[1].priority, pair[0].start, pair[0].tracker))
        for hit, _spec in fresh:
            self._hits.append(
                TrackerHit(
                    hit.tracker,
                    hit.phrase,
                    hit.language,
                    segment.said_by,
                    segment.at,
                    segment.track,
                    segment.seq,
                    segment.text,
                )
            )
            self._first_heard.setdefault(hit.tracker, segment.at)
        for hit, spec in fresh:
            if spec.not_said_within is not None:
                continue  # heard in time: nothing to show
            card = self._card(
                hit.tracker, spec, segment.said_by.value, segment.at, segment.text, segment
            )
            if card is not None:
                events.append(card)
        events += self._tick_checklist({hit.tracker for hit, _ in fresh}, segment.at)
        return events

    def _card(
        self,
        tracker: str,
        spec: TrackerSpec,
        said_by: str,
        at: datetime,
        text: str,
        segment: TranscriptSegment | None = None,
    ) -> CardFired | None:
        if spec.card is None:
            return None
        count = self._card_count.get(tracker, 0)
        if spec.max_per_call is not None and count >= spec.max_per_call:
            return None
        last = self._last_card.get(tracker)
        # abs(): the other track's segments may be applied after later ones of this track.
        if last is not None and abs((at - last).total_seconds()) < spec.cooldown_s:
            return None
        card = self.guidance.file.cards[spec.card]
        fired = CardFired(
            self.call_sid,
            tracker,
            spec.card,
            card.title,
            said_by,
            at,
            text,
            card.text,
            tuple(card.links),
            segment.track if segment else None,
            segment.seq if segment else None,
        )
        self._card_count[tracker] = count + 1
        self._last_card[tracker] = at
        self._cards.append(fired)
        return fired

    def _tick_checklist(self, heard: set[str], at: datetime) -> list[GuidanceEvent]:
        events: list[GuidanceEvent] = []
        for item in self.guidance.file.checklist:
            if item.tracker in heard and not self._checklist[item.id]:
                self._checklist[item.id] = True
                events.append(
                    ChecklistChanged(self.call_sid, item.id, item.label, True, item.tracker, at)
                )
        return events

    def _nudge(self, now: datetime) -> list[GuidanceEvent]:
        events: list[GuidanceEvent] = []
        trackers = self.guidance.file.trackers
        for deadline, _priority, tracker in self._not_said:
            if deadline > now or tracker in self._nudged:
                continue
            self._nudged.add(tracker)
            heard = self._first_heard.get(tracker)
            if heard is not None and heard <= deadline:
                continue
            spec = trackers[tracker]
            card = self._card(tracker, spec, spec.said_by, deadline, "")
            if card is not None:
                events.append(card)
        return events
