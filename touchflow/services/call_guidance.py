"""Live call guidance in a serve process: one :class:`CallSession` per live call.

::

    transcript callback / Media Stream -> CallTranscripts.publish (commit)
        -> CallGuidance.on_new(new events)            (the request's worker thread)
            -> the call's CallSession.receive / end   (under the call's lock)
            -> cards and ticks recorded in call_cards (once per (call, key))
            -> publish("call:<sid>", kind, data, owner)   (the live hub: SSE screens)
    one ticker thread per process, every ``tick_s``: CallSession.tick for every session
        (reorder timeouts, not-said-within trackers)

Sessions live in the process that receives a call's callbacks. A process that gets a
callback for a call it has no session for (it restarted, or another process had the
call until now) rebuilds the session from the stored segments first: cards the replay
fires that are already in ``call_cards`` are not shown again (their key is taken), ones
that are missing (a crash between the segment's commit and the card's) are recorded
and shown. A session ends with the call (``transcription-stopped``, the stream's stop)
and is evicted; one that hears nothing for ``idle_s`` is evicted too (its state is in
the store). The read-back (:func:`guidance_state`) reads only the store, so every
process, a reload and a restart show the same cards and checklist.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from touchflow.domain.guidance import (
    CallEnded,
    CallSession,
    CardFired,
    ChecklistChanged,
    Guidance,
    GuidanceEvent,
    TranscriptUpdate,
)
from touchflow.domain.guidance.markdown import markdown_html
from touchflow.domain.transcripts import TranscriptSegment
from touchflow.ports import TranscriptEvent, TranscriptStarted, TranscriptStopped
from touchflow.store.call_cards import (
    CallCardRow,
    LiveCallRow,
    call_owner,
    calls_of_task,
    cards_after,
    cards_of,
    last_card_id,
    live_calls,
    record_card,
)
from touchflow.store.call_transcripts import read_transcript

__all__ = [
    "CARD_KEYS",
    "CallCardRow",
    "CallGuidance",
    "LiveCallRow",
    "Publish",
    "call_owner",
    "call_screens",
    "card_data",
    "cards_after",
    "guidance_state",
    "last_card_id",
    "live_calls",
    "topic_of",
]

_log = logging.getLogger("touchflow.guidance")

#: The live hub's publish: (topic, kind, data, owner).
Publish = Callable[[str, str, dict[str, Any], str | None], None]
#: Where cards go to be stored later (the group-commit writer): ``record_card``'s columns.
CardSink = Callable[[list[dict[str, Any]]], None]
#: How many calls' shown card keys a process remembers (the cross-process dedupe).
_SHOWN_CALLS = 10_000


def topic_of(call_sid: str) -> str:
    """The hub topic a call's screen subscribes to."""
    return f"call:{call_sid}"


def card_data(card: CardFired) -> dict[str, Any]:
    """A card as the screen receives it: the read-back shape plus its body, HTML and links."""
    data = card.to_dict()
    data["html"] = markdown_html(card.body)
    data["key"] = _card_key(card)
    return data


def _card_key(card: CardFired) -> str:
    if card.seq is None:
        return f"nudge:{card.tracker}"
    return f"card:{card.tracker}:{card.track}:{card.seq}"


def _check_data(ev: ChecklistChanged) -> dict[str, Any]:
    return {
        "item": ev.item,
        "label": ev.label,
        "checked": ev.checked,
        "tracker": ev.tracker,
        "at": ev.at.isoformat(),
        "key": f"check:{ev.item}",
    }


@dataclass
class _Live:
    session: CallSession
    owner: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_heard: float = field(default_factory=time.monotonic)


class CallGuidance:
    """The live sessions of one serve process (thread-safe; ``on_new`` from any thread)."""

    def __init__(
        self,
        engine: Engine,
        guidance: Guidance,
        publish: Publish,
        *,
        clock: Callable[[], datetime],
        origin: str,
        tick_s: float = 1.0,
        idle_s: float = 3600.0,
    ) -> None:
        self._engine = engine
        self.guidance = guidance
        self._publish = publish
        self._clock = clock
        self.origin = origin
        self.tick_s = tick_s
        self.idle_s = idle_s
        self._sessions: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.rebuilt = 0
        #: Set (the serve app, with the group-commit writer): cards are published when they
        #: fire and their rows handed here, instead of a transaction per segment first.
        self.sink: CardSink | None = None
        self._shown: OrderedDict[str, set[str]] = OrderedDict()

    # ------------------------------------------------------------------ in
    def on_new(self, events: list[TranscriptEvent]) -> None:
        """What :class:`~touchflow.services.call_transcripts.CallTranscripts` found new."""
        by_call: dict[str, list[TranscriptEvent]] = {}
        for ev in events:
            by_call.setdefault(ev.call_sid, []).append(ev)
        for call_sid, evs in by_call.items():
            try:
                self._apply(call_sid, evs)
            except Exception:  # the transcript is stored; the screen catches up on reload
                _log.exception("guidance: could not apply events of call %s", call_sid)

    def _apply(self, call_sid: str, events: list[TranscriptEvent]) -> None:
        fresh = {(e.track, e.seq) for e in events if isinstance(e, TranscriptSegment)}
        live = self._session(call_sid, fresh)
        if live is None:
            return
        with live.lock:
            live.last_heard = time.monotonic()
            out: list[GuidanceEvent] = []
            for ev in events:
                now = self._clock()
                if isinstance(ev, TranscriptStarted):
                    if ev.task_id is not None:
                        with self._engine.connect() as conn:
                            live.owner = call_owner(conn, call_sid)[1]
                elif isinstance(ev, TranscriptStopped):
                    out += live.session.end(now)
                else:
                    out += live.session.receive(ev, now)
            self._emit(live, out)

    def _session(self, call_sid: str, fresh: set[tuple[str, int]]) -> _Live | None:
        with self._lock:
            live = self._sessions.get(call_sid)
            if live is not None:
                return live
            building = self._building.setdefault(call_sid, threading.Lock())
        with building:  # one rebuild per call, not one per concurrent callback
            with self._lock:
                live = self._sessions.get(call_sid)
            if live is None:
                live = self._rebuild(call_sid, fresh)
                with self._lock:
                    self._sessions[call_sid] = live
                    self._building.pop(call_sid, None)
        self._ensure_ticker()
        return live

    def _rebuild(self, call_sid: str, fresh: set[tuple[str, int]]) -> _Live:
        """A session from what is stored (without ``fresh``: the caller applies those)."""
        with self._engine.connect() as conn:
            row = read_transcript(conn, call_sid)
            owner = call_owner(conn, call_sid)[1]
        started = row.started_at if row is not None else self._clock()
        live = _Live(CallSession(self.guidance, call_sid, started), owner)
        if row is None:
            return live
        old = sorted(
            (s for s in row.segments if (s.track, s.seq) not in fresh),
            key=lambda s: (s.at, s.track, s.seq),
        )
        if old:
            self.rebuilt += 1
            now = self._clock()
            events: list[GuidanceEvent] = []
            for seg in old:
                events += live.session.receive(seg, now)
            # Replayed: only cards and ticks not yet stored are shown (the rest are).
            self._emit(
                live, [e for e in events if not isinstance(e, TranscriptUpdate)], store_first=True
            )
        return live

    # ------------------------------------------------------------------ out
    def mark_shown(self, call_sid: str, key: str) -> bool:
        """Remember that this process showed ``key`` of the call; False if it already had.

        The card poller asks before publishing a row another process stored, and the
        group-commit path before publishing a card it fired: a card reaches a screen of
        this process once, whichever process fired it first.
        """
        with self._lock:
            keys = self._shown.get(call_sid)
            if keys is None:
                keys = self._shown[call_sid] = set()
                if len(self._shown) > _SHOWN_CALLS:
                    self._shown.popitem(last=False)
            else:
                self._shown.move_to_end(call_sid)
            if key in keys:
                return False
            keys.add(key)
            return True

    def _emit(
        self, live: _Live, events: Iterable[GuidanceEvent], *, store_first: bool = False
    ) -> None:
        """Record cards and ticks, then publish what is new (call's lock held: in order).

        With a :attr:`sink` (and not ``store_first``: a rebuild's replay must know what is
        stored), cards and ticks are published at once and their rows go to the sink.
        """
        events = list(events)
        if not events:
            return
        if self.sink is not None and not store_first:
            self._emit_now(live, events, self.sink)
            return
        sid = live.session.call_sid
        stored = [e for e in events if isinstance(e, CardFired | ChecklistChanged)]
        new_ids: set[int] = set()
        if stored:
            with self._engine.begin() as conn:
                for i, ev in enumerate(events):
                    if isinstance(ev, CardFired):
                        data = card_data(ev)
                        got = record_card(
                            conn, sid, data["key"], "card", ev.tracker, data, ev.at, self.origin
                        )
                    elif isinstance(ev, ChecklistChanged):
                        data = _check_data(ev)
                        got = record_card(
                            conn, sid, data["key"], "checklist", ev.tracker, data, ev.at,
                            self.origin,
                        )  # fmt: skip
                    else:
                        continue
                    if got is not None:
                        new_ids.add(i)
                        self.mark_shown(sid, data["key"])
        topic = topic_of(sid)
        for i, ev in enumerate(events):
            if isinstance(ev, TranscriptUpdate):
                self._publish(topic, "transcript", ev.to_dict(), live.owner)
            elif isinstance(ev, CardFired):
                if i in new_ids:
                    self._publish(topic, "card", card_data(ev), live.owner)
            elif isinstance(ev, ChecklistChanged):
                if i in new_ids:
                    self._publish(topic, "checklist", _check_data(ev), live.owner)
            elif isinstance(ev, CallEnded):
                self._ended(live, ev)

    def _ended(self, live: _Live, ev: CallEnded) -> None:
        sid = live.session.call_sid
        self._publish(topic_of(sid), "ended", {"at": ev.at.isoformat()}, live.owner)
        with self._lock:
            self._sessions.pop(sid, None)

    def _emit_now(self, live: _Live, events: list[GuidanceEvent], sink: CardSink) -> None:
        """Publish in order now; the rows of new cards and ticks to ``sink`` (stored later)."""
        sid = live.session.call_sid
        topic = topic_of(sid)
        rows: list[dict[str, Any]] = []
        for ev in events:
            if isinstance(ev, TranscriptUpdate):
                self._publish(topic, "transcript", ev.to_dict(), live.owner)
            elif isinstance(ev, CardFired | ChecklistChanged):
                kind, data = (
                    ("card", card_data(ev)) if isinstance(ev, CardFired)
                    else ("checklist", _check_data(ev))
                )  # fmt: skip
                if not self.mark_shown(sid, data["key"]):
                    continue  # shown already (another process fired it first: the poller)
                rows.append({
                    "call_sid": sid, "key": data["key"], "kind": kind, "tracker": ev.tracker,
                    "data": data, "at": ev.at, "origin": self.origin,
                })  # fmt: skip
                self._publish(topic, kind, data, live.owner)
            elif isinstance(ev, CallEnded):
                self._ended(live, ev)
        if rows:
            sink(rows)

    # ------------------------------------------------------------------ the ticker
    def tick(self) -> int:
        """One pass over every session: reorder timeouts and not-said-within trackers."""
        with self._lock:
            lives = list(self._sessions.values())
        fired = 0
        idle_before = time.monotonic() - self.idle_s
        for live in lives:
            with live.lock:
                if live.last_heard < idle_before:
                    with self._lock:
                        self._sessions.pop(live.session.call_sid, None)
                    continue
                events = live.session.tick(self._clock())
                fired += len(events)
                self._emit(live, events)
        return fired

    def _ensure_ticker(self) -> None:
        if self._ticker is not None and self._ticker.is_alive():
            return
        with self._lock:
            if self._ticker is not None and self._ticker.is_alive():
                return
            self._stop.clear()
            self._ticker = threading.Thread(target=self._run, name="guidance-ticker", daemon=True)
            self._ticker.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception:  # a database hiccup: next second again
                _log.exception("guidance: a tick failed")

    def close(self) -> None:
        """Stop the ticker (the app's shutdown)."""
        self._stop.set()
        ticker = self._ticker
        if ticker is not None:
            ticker.join(timeout=5)

    @property
    def live_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)


#: The keys of a card in the read-back (the issue's shape); the screen gets all of them.
CARD_KEYS = ("tracker", "card", "title", "said_by", "at", "text")


def guidance_state(
    conn: Connection, guidance: Guidance | None, call_sid: str, *, full: bool = False
) -> dict[str, Any] | None:
    """``GET /api/calls/{call_sid}/guidance`` from the store (None: no such call).

    ``full``: cards as the screen receives them (their HTML, links and key too).
    The same on every process and after a restart: segments as stored (latest version
    of each, in the order said), cards and ticks from ``call_cards`` in firing order.
    """
    row = read_transcript(conn, call_sid)
    if row is None:
        return None
    segs = sorted(row.segments, key=lambda s: (s.at, s.track, s.seq))
    stored = cards_of(conn, call_sid)
    checklist = {item.id: False for item in guidance.file.checklist} if guidance is not None else {}
    cards = []
    for c in stored:
        if c.kind == "checklist":
            checklist[str(c.data["item"])] = bool(c.data.get("checked", True))
        else:
            cards.append(c.data if full else {k: c.data.get(k) for k in CARD_KEYS})
    return {
        "call_sid": call_sid,
        "status": "ended" if row.status == "ended" else "live",
        "segments": [
            TranscriptUpdate(s.call_sid, s.track, s.seq, s.said_by, s.text, s.final, s.at).to_dict()
            for s in segs
        ],
        "cards": cards,
        "checklist": checklist,
    }


def call_screens(engine: Engine, task_id: int, public_url: str) -> list[tuple[str, str, str]]:
    """The live screens of a task's calls: (call_sid, live|ended, URL), oldest first."""
    base = public_url.rstrip("/")
    with engine.connect() as conn:
        calls = calls_of_task(conn, task_id)
    return [(sid, status, f"{base}/calls/{sid}") for sid, status in calls]
