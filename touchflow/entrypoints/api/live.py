"""Live updates: one in-process hub that fans events out to server-sent-event streams.

::

    publisher (a route, a service callback)      poller (one per process)
          \\  hub.publish(topic, kind, data, owner)   /  reads events by high-water mark
           v                                         v
                        LiveHub  --(topic, viewer filter)-->  subscriber queues (bounded)
                                                               -> GET /live/stream (SSE)

- Topics are strings: ``activity`` (replies, meetings, bounces: the
  dashboard's feed), ``call:<sid>`` (a live call's transcript and cards).
- Every event carries its ``owner`` (an owner email, or None for unowned);
  a subscriber receives it only when its :class:`~touchflow.domain.access.Viewer`
  may see that owner. A rep never receives another rep's event.
- :meth:`LiveHub.publish` is synchronous, cheap and thread-safe: a route
  running in a worker thread can call it; delivery happens on the event loop
  right away (no waiting for the poller).
- One :class:`ActivityPoller` per process, running only while someone is
  subscribed: N open dashboards cost one query per interval, not N.
- Each subscriber has a bounded queue; one that falls ``queue_size`` events
  behind is dropped (its stream ends, the browser reconnects with
  ``Last-Event-ID`` and is replayed from the hub's ring buffer).
- Event ids are ``<epoch>-<seq>``: the epoch is this process's; an id from
  another process (or before a restart) replays nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from touchflow.domain.access import Viewer
from touchflow.services.activity import (
    ActivityMark,
    changes_since,
    deal_changes_since,
    start_marks,
)

__all__ = [
    "ActivityPoller",
    "Live",
    "LiveEvent",
    "LiveHub",
    "Subscriber",
    "live_of",
    "sse_stream",
]

_log = logging.getLogger("touchflow.api.live")


@dataclass(frozen=True)
class LiveEvent:
    id: str  # "<epoch>-<seq>"
    seq: int
    topic: str
    kind: str  # the SSE event name
    owner: str | None
    data: dict[str, Any]

    @cached_property
    def text(self) -> str:
        """The event as SSE text, serialized once however many subscribers receive it."""
        body = json.dumps(self.data, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n"


@dataclass(eq=False)
class Subscriber:
    viewer: Viewer
    topics: frozenset[str]
    queue: asyncio.Queue[LiveEvent | None]
    dropped: bool = False

    def wants(self, event: LiveEvent) -> bool:
        return event.topic in self.topics and self.viewer.can_see(event.owner)


@dataclass
class HubStats:
    published: int = 0
    delivered: int = 0
    dropped_subscribers: int = 0


class LiveHub:
    """Topic fan-out with per-viewer filtering, bounded queues and a replay buffer."""

    def __init__(self, *, queue_size: int = 256, replay: int = 1000) -> None:
        self.queue_size = queue_size
        self.epoch = secrets.token_hex(4)
        self.stats = HubStats()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._replay: deque[LiveEvent] = deque(maxlen=replay)
        self._by_topic: dict[str, set[Subscriber]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- publishing ----------------------------------------------------------
    def publish(
        self, topic: str, kind: str, data: dict[str, Any], *, owner: str | None
    ) -> LiveEvent:
        """Send ``data`` as event ``kind`` to ``topic``'s subscribers who may see ``owner``.

        Callable from the event loop or from any thread; never blocks on a subscriber.
        """
        with self._lock:
            seq = next(self._seq)
            event = LiveEvent(f"{self.epoch}-{seq}", seq, topic, kind, owner, data)
            self._replay.append(event)
            self.stats.published += 1
        loop = self._loop
        if loop is None or loop.is_closed():
            return event  # nobody has subscribed yet: kept for replay only
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fanout(event)
        else:
            loop.call_soon_threadsafe(self._fanout, event)
        return event

    def _fanout(self, event: LiveEvent) -> None:
        for sub in list(self._by_topic.get(event.topic, ())):
            if not sub.viewer.can_see(event.owner):
                continue
            try:
                sub.queue.put_nowait(event)
                self.stats.delivered += 1
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        """A subscriber that fell behind: its stream ends (the browser reconnects)."""
        _log.info(
            "live: dropping a slow subscriber of %s (%s)", sorted(sub.topics), sub.viewer.email
        )
        self.unsubscribe(sub)
        sub.dropped = True
        self.stats.dropped_subscribers += 1
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    # -- subscribing ---------------------------------------------------------
    def subscribe(
        self, viewer: Viewer, topics: Iterable[str], last_event_id: str | None = None
    ) -> tuple[Subscriber, list[LiveEvent]]:
        """A new subscriber (on the running loop) and the events it missed since an id."""
        self._loop = asyncio.get_running_loop()
        sub = Subscriber(viewer, frozenset(topics), asyncio.Queue(maxsize=self.queue_size))
        with self._lock:
            missed = self._missed(sub, last_event_id)
        for topic in sub.topics:
            self._by_topic.setdefault(topic, set()).add(sub)
        return sub, missed

    def _missed(self, sub: Subscriber, last_event_id: str | None) -> list[LiveEvent]:
        if not last_event_id:
            return []
        epoch, _, seq = last_event_id.partition("-")
        if epoch != self.epoch or not seq.isdigit():
            return []
        after = int(seq)
        return [e for e in self._replay if e.seq > after and sub.wants(e)]

    def unsubscribe(self, sub: Subscriber) -> None:
        for topic in sub.topics:
            subs = self._by_topic.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_topic[topic]

    @property
    def subscriber_count(self) -> int:
        return len({s for subs in self._by_topic.values() for s in subs})

    def topics(self) -> list[str]:
        """The topics someone is subscribed to right now."""
        return list(self._by_topic)

    def has_subscribers(self, topic: str) -> bool:
        return bool(self._by_topic.get(topic))


class ActivityPoller:
    """One loop per process: new activity rows from the database, published to ``activity``.

    Runs while the hub has subscribers (started by the first one, ends
    after the last one leaves). ``transaction`` runs a function in one
    transaction in a worker thread (the app's :class:`Context`).
    """

    def __init__(
        self,
        hub: LiveHub,
        transaction: Callable[[Callable[[Connection], Any]], Any],
        interval_s: float,
        on_changes: Callable[[], Any] | None = None,
    ) -> None:
        self.hub = hub
        self.transaction = transaction
        self.interval_s = interval_s
        # Run (in a worker thread) before a batch of changes is published: the app
        # brings the rollups up to date, so pages refetching their data see the change.
        self.on_changes = on_changes
        self.polls = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._mark: ActivityMark | None = None
        self._deal_mark: ActivityMark | None = None

    def ensure_running(self) -> None:
        """Start the loop on the running event loop unless it runs (it ends with no subscribers)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # The mark is taken when the first viewer arrives (their page has rendered what
        # came before) and dropped when the last one leaves: a poller restarted an hour
        # later starts from then, not with an hour of events at once.
        try:
            self._mark, self._deal_mark = await run_in_threadpool(self.transaction, start_marks)
        except Exception:
            _log.exception("live: could not read the activity mark; retrying at the next poll")
        try:
            await self._loop()
        finally:
            self._mark = self._deal_mark = None

    async def _loop(self) -> None:
        while self.hub.has_subscribers("activity"):
            await asyncio.sleep(self.interval_s)
            try:
                await self.poll_once()
            except Exception:  # a database hiccup: log it, keep the streams, try next interval
                self.errors += 1
                _log.exception("live: an activity poll failed; retrying in %ss", self.interval_s)

    async def poll_once(self) -> int:
        """One read of new events and deal stage changes, published; how many there were."""
        if self._mark is None or self._deal_mark is None:
            self._mark, self._deal_mark = await run_in_threadpool(self.transaction, start_marks)
        mark, deal_mark = self._mark, self._deal_mark

        def read(conn: Connection) -> Any:
            return changes_since(conn, mark), deal_changes_since(conn, deal_mark)

        (changes, self._mark), (deals, self._deal_mark) = await run_in_threadpool(
            self.transaction, read
        )
        self.polls += 1
        if (changes or deals) and self.on_changes is not None:
            try:
                await run_in_threadpool(self.on_changes)
            except Exception:  # the feed still goes out; the figures catch up at the next tick
                _log.exception("live: bringing the rollups up to date failed")
        for activity in changes:
            self.hub.publish("activity", "activity", activity.as_json(), owner=activity.owner)
        for deal in deals:
            self.hub.publish("activity", "deal", deal.as_json(), owner=deal.owner)
        return len(changes) + len(deals)


async def sse_stream(
    hub: LiveHub,
    sub: Subscriber,
    missed: list[LiveEvent],
    heartbeat_s: float,
) -> AsyncIterator[str]:
    """The text of one SSE response: a retry hint, missed events, then live ones and heartbeats."""
    try:
        yield "retry: 2000\n\n"
        for event in missed:
            yield event.text
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), heartbeat_s)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            if event is None:  # dropped for falling behind
                return
            yield event.text
    finally:
        hub.unsubscribe(sub)


@dataclass
class Live:
    """The hub and the poller of one app (``app.state.live``)."""

    hub: LiveHub
    poller: ActivityPoller
    heartbeat_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def live_of(request: Request) -> Live:
    """The app's hub and poller: ``live_of(request).hub.publish(...)`` from any route."""
    live: Live = request.app.state.live
    return live
