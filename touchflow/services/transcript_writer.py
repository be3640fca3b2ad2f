"""Group commit for transcript callbacks: many requests' segments and cards, one transaction.

``CallTranscripts.publish`` costs one transaction (and its round trips and commit) per
callback, and live guidance a second one for the cards a segment fires. At a few hundred
segments a second that, not matching, is what a serve process spends its CPU on. The
:class:`TranscriptWriter` is one thread per process that takes what every request
submitted since its last commit and writes it in one transaction::

    request -> submit(events) --queue--> writer thread:
        BEGIN; the cards fired since the last commit (one INSERT);
               every pending request's events (record_batch: starts, segments in
               multi-row upserts, stops); COMMIT
        -> on_new(what was new)      (guidance: cards published to the screens now,
                                      their rows queued for the next commit)
        -> on_ended(calls stopped)
        -> each request's future: its events and the cards they fired are committed

Nothing waits for a timer: while one transaction commits, the next requests queue, so a
batch is as large as the load makes it (one segment when idle, dozens under load).

What it keeps from :class:`~touchflow.services.call_transcripts.CallTranscripts`: a
segment is stored before guidance sees it, and guidance sees only what was new (the
store decides, as before); a callback is answered only after its segment and the cards it
fired are committed; a call's segments are written in arrival order batch by batch and
in ``(track, seq)`` order within one. What changes: a card is shown as soon as it fires
and stored a few milliseconds later (docs/guidance.md, "Group commit": what a crash in
between can do).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from touchflow.domain.transcripts import TranscriptSegment
from touchflow.ports import TranscriptEvent, TranscriptStarted, TranscriptStopped
from touchflow.services.call_transcripts import CallTranscripts, record_events
from touchflow.store.call_cards import record_cards
from touchflow.store.call_transcripts import end_call, start_call, upsert_segments

__all__ = ["TranscriptWriter", "record_batch"]

_log = logging.getLogger("touchflow.transcripts.writer")


def record_batch(
    conn: Connection, batches: Sequence[Sequence[TranscriptEvent]], *, source: str
) -> list[list[TranscriptEvent]]:
    """Record several publishes' events in ``conn``'s transaction; each one's new events.

    The same rules as :func:`~touchflow.services.call_transcripts.record_events` applied
    to the publishes one after the other (starts first, then segments in ``(track, seq)``
    order, then stops), with all the segments in a few multi-row statements.
    """
    flat = [(b, i, ev) for b, evs in enumerate(batches) for i, ev in enumerate(evs)]

    def order(item: tuple[int, int, TranscriptEvent]) -> tuple[int, str, str, int, int, int]:
        b, i, ev = item
        if isinstance(ev, TranscriptSegment):
            return (1, ev.call_sid, ev.track, ev.seq, b, i)
        return (0 if isinstance(ev, TranscriptStarted) else 2, "", "", 0, b, i)

    flat.sort(key=order)
    new: dict[tuple[int, int], TranscriptEvent] = {}
    segs = [(b, i, ev) for b, i, ev in flat if isinstance(ev, TranscriptSegment)]
    for item in flat:
        b, i, ev = item
        if isinstance(ev, TranscriptStarted):
            changed = start_call(
                conn, ev.call_sid, ev.at, source=ev.source, language=ev.language,
                task_id=ev.task_id, consent=ev.consent,
            )  # fmt: skip
        elif isinstance(ev, TranscriptStopped):
            changed = end_call(conn, ev.call_sid, ev.at, source=source)
        else:
            continue
        if changed:
            new[(b, i)] = ev
    if segs:
        flags = upsert_segments(conn, [ev for _, _, ev in segs], source=source)
        for (b, i, ev), changed in zip(segs, flags, strict=True):
            if changed:
                new[(b, i)] = ev
    # Handed on in the order applied: starts, segments, stops (as record_events does).
    out: list[list[TranscriptEvent]] = [[] for _ in batches]
    for b, i, _ in flat:
        got = new.get((b, i))
        if got is not None:
            out[b].append(got)
    return out


Done = Callable[[list[TranscriptEvent] | BaseException], None]


@dataclass
class _Pending:
    events: Sequence[TranscriptEvent]
    done: Done
    new: list[TranscriptEvent] = field(default_factory=list)


class TranscriptWriter:
    """One writer thread per serve process over a :class:`CallTranscripts` port.

    ``on_new`` and ``on_ended`` are the port's (read at each commit: live guidance plugs
    in after the port is made). :meth:`record_cards` queues card rows for the next commit
    (live guidance's sink). Thread-safe; :meth:`submit_async` from the event loop.
    """

    def __init__(self, engine: Engine, port: CallTranscripts, *, max_batch: int = 500) -> None:
        self._engine = engine
        self._port = port
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._cards: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.commits = 0
        self.written = 0

    # ------------------------------------------------------------------ in
    def submit(self, events: Sequence[TranscriptEvent], done: Done) -> None:
        """Queue one publish; ``done`` gets its new events (or the error) after the commit."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the transcript writer is closed")
            self._pending.append(_Pending(events, done))
            self._ensure_thread()
            self._cond.notify()

    async def submit_async(self, events: Sequence[TranscriptEvent]) -> list[TranscriptEvent]:
        """:meth:`submit` from the event loop: the new events once they are committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[TranscriptEvent]] = loop.create_future()

        def done(result: list[TranscriptEvent] | BaseException) -> None:
            loop.call_soon_threadsafe(_resolve, fut, result)

        self.submit(events, done)
        return await fut

    def record_cards(self, rows: Sequence[dict[str, Any]]) -> None:
        """Card rows (``record_card``'s columns) to store at the next commit."""
        if not rows:
            return
        with self._cond:
            self._cards.extend(rows)
            self._ensure_thread()
            self._cond.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed (tests, shutdown)."""
        ev = threading.Event()
        self.submit([], lambda _: ev.set())
        return ev.wait(timeout)

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    # ------------------------------------------------------------------ the thread
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="transcript-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        waiting: list[_Pending] = []  # answered after the cards they fired are committed
        while True:
            with self._cond:
                while not self._pending and not self._cards and not waiting and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending and not self._cards and not waiting:
                    return
                batch, self._pending = (
                    self._pending[: self.max_batch],
                    self._pending[self.max_batch :],
                )
                cards, self._cards = self._cards, []
            try:
                waiting = self._commit(batch, cards, waiting)
            except Exception:  # never let the thread die: the next batch tries again
                _log.exception("transcript writer: a batch failed")
                for p in batch + waiting:
                    _call(p.done, RuntimeError("transcript writer failed"))
                waiting = []

    def _commit(
        self, batch: list[_Pending], cards: list[dict[str, Any]], waiting: list[_Pending]
    ) -> list[_Pending]:
        source = self._port.source
        news: list[list[TranscriptEvent] | None]
        try:
            with self._engine.begin() as conn:
                record_cards(conn, cards)
                news = list(record_batch(conn, [p.events for p in batch], source=source))
        except Exception as exc:
            # One bad publish must not fail the others: each alone, the cards alone.
            _log.warning("transcript writer: batch of %d failed (%s); one by one", len(batch), exc)
            news = [self._alone(p) for p in batch]
            self._cards_alone(cards)
        self.commits += 1
        self.written += len(batch)
        for p in waiting:
            _call(p.done, p.new)
        ok = [p for p, new in zip(batch, news, strict=True) if new is not None]
        for p, new in zip(batch, news, strict=True):
            if new is not None:
                p.new = new
        fresh = [ev for p in ok for ev in p.new]
        if fresh:
            self._after_commit(fresh)
        with self._cond:
            fired = bool(self._cards)
        # A publish whose segments fired cards is answered after their commit (next one).
        later = [p for p in ok if p.new] if fired else []
        for p in ok:
            if p not in later:
                _call(p.done, p.new)
        return later

    def _after_commit(self, fresh: list[TranscriptEvent]) -> None:
        on_new, on_ended = self._port.on_new, self._port.on_ended
        try:
            if on_new is not None:
                on_new(fresh)
        except Exception:
            _log.exception("transcript writer: on_new failed")
        stopped = [ev for ev in fresh if isinstance(ev, TranscriptStopped)]
        if stopped and on_ended is not None:
            try:
                on_ended([ev.call_sid for ev in stopped], max(ev.at for ev in stopped))
            except Exception:
                _log.exception("transcript writer: on_ended failed")

    def _alone(self, p: _Pending) -> list[TranscriptEvent] | None:
        try:
            with self._engine.begin() as conn:
                return record_events(conn, p.events, source=self._port.source)
        except Exception as exc:
            _call(p.done, exc)
            return None

    def _cards_alone(self, cards: list[dict[str, Any]]) -> None:
        for row in cards:
            try:
                with self._engine.begin() as conn:
                    record_cards(conn, [row])
            except Exception:
                _log.exception("transcript writer: could not store card %s", row.get("key"))


def _call(done: Done, result: list[TranscriptEvent] | BaseException) -> None:
    try:
        done(result)
    except Exception:
        _log.exception("transcript writer: a completion callback failed")


def _resolve(
    fut: asyncio.Future[list[TranscriptEvent]], result: list[TranscriptEvent] | BaseException
) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
