"""The live hub and the activity poller: per-viewer filtering, bounded queues, replay, one query."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, event

from tests.support.harness import Harness, make_cadence, prospect
from touchflow.domain.access import Viewer
from touchflow.entrypoints.api.live import ActivityPoller, LiveHub, sse_stream
from touchflow.services.activity import LOOKBACK, changes_since, start_mark, start_marks
from touchflow.store.schema import deal_stage_changes, deals, events

ANA, BEN = "ana@x.example", "ben@x.example"
REP_A = Viewer(ANA, "rep", frozenset({ANA}))
REP_B = Viewer(BEN, "rep", frozenset({BEN}))
ADMIN = Viewer("admin@x.example", "admin", None)
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def _drain(q: asyncio.Queue[Any]) -> list[Any]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_a_rep_never_receives_another_reps_event() -> None:
    async def run() -> None:
        hub = LiveHub()
        a, _ = hub.subscribe(REP_A, ["activity"])
        b, _ = hub.subscribe(REP_B, ["activity"])
        boss, _ = hub.subscribe(ADMIN, ["activity"])
        other_topic, _ = hub.subscribe(ADMIN, ["call:CA1"])
        hub.publish("activity", "activity", {"n": 1}, owner=ANA)
        hub.publish("activity", "activity", {"n": 2}, owner=BEN)
        hub.publish("activity", "activity", {"n": 3}, owner=None)  # unowned: admins only
        hub.publish("call:CA1", "card", {"n": 4}, owner=BEN)
        assert [e.data["n"] for e in _drain(a.queue)] == [1]
        assert [e.data["n"] for e in _drain(b.queue)] == [2]
        assert [e.data["n"] for e in _drain(boss.queue)] == [1, 2, 3]
        assert [e.data["n"] for e in _drain(other_topic.queue)] == [4]

    asyncio.run(run())


def test_a_slow_subscriber_is_dropped_not_buffered_without_end() -> None:
    async def run() -> None:
        hub = LiveHub(queue_size=3)
        slow, _ = hub.subscribe(REP_A, ["activity"])
        fast, _ = hub.subscribe(REP_A, ["activity"])
        for n in range(3):
            hub.publish("activity", "activity", {"n": n}, owner=ANA)
        _drain(fast.queue)
        hub.publish("activity", "activity", {"n": 3}, owner=ANA)  # slow's queue is full
        assert slow.dropped and hub.subscriber_count == 1
        assert _drain(slow.queue) == [None]  # its stream ends; the browser reconnects
        assert [e.data["n"] for e in _drain(fast.queue)] == [3]
        assert hub.stats.dropped_subscribers == 1

    asyncio.run(run())


def test_reconnect_with_last_event_id_replays_what_was_missed_and_only_theirs() -> None:
    async def run() -> None:
        hub = LiveHub(replay=10)
        first = hub.publish("activity", "activity", {"n": 0}, owner=ANA)
        hub.publish("activity", "activity", {"n": 1}, owner=BEN)
        hub.publish("activity", "activity", {"n": 2}, owner=ANA)
        _, missed = hub.subscribe(REP_A, ["activity"], first.id)
        assert [e.data["n"] for e in missed] == [2]
        _, foreign = hub.subscribe(REP_A, ["activity"], "otherepoch-0")
        assert foreign == []  # another process's (or a restarted one's) ids replay nothing
        _, none = hub.subscribe(REP_A, ["activity"], None)
        assert none == []

    asyncio.run(run())


def test_publish_from_a_worker_thread_is_delivered_at_once() -> None:
    async def run() -> None:
        hub = LiveHub()
        sub, _ = hub.subscribe(REP_A, ["call:CA9"])
        t = threading.Thread(
            target=hub.publish,
            args=("call:CA9", "card", {"title": "pricing"}),
            kwargs={"owner": ANA},
        )
        t.start()
        event = await asyncio.wait_for(sub.queue.get(), 1.0)
        t.join()
        assert event is not None and event.data == {"title": "pricing"}

    asyncio.run(run())


def test_the_stream_sends_heartbeats_and_events_as_sse() -> None:
    async def run() -> None:
        hub = LiveHub()
        sub, missed = hub.subscribe(REP_A, ["activity"])
        stream = sse_stream(hub, sub, missed, heartbeat_s=0.05)
        assert await anext(stream) == "retry: 2000\n\n"
        assert await anext(stream) == ": heartbeat\n\n"
        ev = hub.publish("activity", "activity", {"kind": "replied"}, owner=ANA)
        text = await anext(stream)
        assert text == f'id: {ev.id}\nevent: activity\ndata: {{"kind":"replied"}}\n\n'
        await stream.aclose()
        assert hub.subscriber_count == 0  # unsubscribed when the client went away

    asyncio.run(run())


def _world(engine: Engine, tmp_path: Any) -> Harness:
    h = Harness(engine, make_cadence(tmp_path))
    h.add([prospect("ann@acme.example")], MON, owner=ANA)
    h.add([prospect("cy@globex.example")], MON, owner=BEN)
    h.tick(MON)
    return h


def test_one_poll_serves_every_subscriber_with_one_query(db: Engine, tmp_path: Any) -> None:
    h = _world(db, tmp_path)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def transaction(fn: Any) -> Any:
        with db.begin() as conn:
            return fn(conn)

    async def run() -> None:
        hub = LiveHub()
        poller = ActivityPoller(hub, transaction, interval_s=60)
        subs = [hub.subscribe(REP_A if i % 2 else REP_B, ["activity"])[0] for i in range(50)]
        await poller.poll_once()  # sets the mark at the newest event
        h.exit_event("ann@acme.example", "reply", MON)
        h.exit_event("cy@globex.example", "reply", MON)
        event.listen(db, "before_cursor_execute", count)
        try:
            assert await poller.poll_once() == 2
        finally:
            event.remove(db, "before_cursor_execute", count)
        assert len([s for s in statements if "events" in s]) == 1
        got = {s.viewer.email: [e.data["email"] for e in _drain(s.queue)] for s in subs}
        assert got == {ANA: ["ann@acme.example"], BEN: ["cy@globex.example"]}
        assert await poller.poll_once() == 0  # nothing twice

    asyncio.run(run())


def test_a_row_committed_late_below_the_mark_is_still_published_once(
    db: Engine, tmp_path: Any
) -> None:
    h = _world(db, tmp_path)
    with db.begin() as conn:
        mark = start_mark(conn)
    pid = h.enrollment("ann@acme.example").prospect_id

    def add(conn: Connection, id_: int) -> None:
        conn.execute(
            events.insert().values(
                id=id_,
                prospect_id=pid,
                type="replied",
                occurred_at=MON,
                source="test",
                created_at=MON,
            )
        )

    top = mark.last_id + 100
    with db.begin() as conn:
        add(conn, top)
    with db.begin() as conn:
        changes, mark = changes_since(conn, mark)
    assert [c.id for c in changes] == [top]
    # An id taken earlier, committed after the poll (PostgreSQL sequences do this).
    with db.begin() as conn:
        add(conn, top - 10)
    with db.begin() as conn:
        changes, mark = changes_since(conn, mark)
        again, _ = changes_since(conn, mark)
    assert [c.id for c in changes] == [top - 10] and again == []
    assert [c.owner for c in changes] == [ANA]
    assert LOOKBACK > 10


def test_the_poller_outlives_a_failed_query_and_stops_with_no_subscribers(
    db: Engine, tmp_path: Any
) -> None:
    h = _world(db, tmp_path)
    failures = [1]

    def transaction(fn: Any) -> Any:
        with db.begin() as conn:
            result = fn(conn)
        if fn is not start_marks and failures:
            failures.pop()
            raise RuntimeError("the database went away for a moment")
        return result

    async def run() -> None:
        hub = LiveHub()
        poller = ActivityPoller(hub, transaction, interval_s=0.01)
        sub, _ = hub.subscribe(REP_A, ["activity"])
        poller.ensure_running()
        await asyncio.sleep(0.05)  # the mark is taken, a poll failed
        h.exit_event("ann@acme.example", "reply", MON)
        event = await asyncio.wait_for(sub.queue.get(), 2.0)
        assert event is not None and event.data["email"] == "ann@acme.example"
        assert poller.errors == 1
        hub.unsubscribe(sub)
        await asyncio.sleep(0.05)
        assert poller._task is not None and poller._task.done()

    asyncio.run(run())


def test_deal_stage_changes_go_out_live_to_whoever_may_see_the_deals_owner(
    db: Engine, tmp_path: Any
) -> None:
    _world(db, tmp_path)
    refreshed: list[int] = []

    def transaction(fn: Any) -> Any:
        with db.begin() as conn:
            return fn(conn)

    async def run() -> None:
        hub = LiveHub()
        poller = ActivityPoller(hub, transaction, 60, on_changes=lambda: refreshed.append(1))
        ana, ben = hub.subscribe(REP_A, ["activity"])[0], hub.subscribe(REP_B, ["activity"])[0]
        assert await poller.poll_once() == 0  # the marks: nothing before now
        assert refreshed == []
        with db.begin() as conn:
            for deal_id, owner in (("D1", ANA), ("D2", BEN)):
                conn.execute(
                    deals.insert().values(
                        source="csv", deal_id=deal_id, name=f"{deal_id} expansion",
                        account_domain="acme.example", owner_email=owner, amount=5000.0,
                        currency="USD", stage="demo", forecast_category="best_case",
                        created_at=MON, updated_at=MON,
                    )
                )  # fmt: skip
                conn.execute(
                    deal_stage_changes.insert().values(
                        source="csv", deal_id=deal_id, stage="demo", entered_at=MON
                    )
                )
        assert await poller.poll_once() == 2
        assert refreshed == [1]  # one refresh of the rollups for the batch, not per viewer
        got_a, got_b = _drain(ana.queue), _drain(ben.queue)
        assert [(e.kind, e.data["deal_id"], e.data["stage"]) for e in got_a] == [
            ("deal", "D1", "demo")
        ]
        assert [e.data["deal_id"] for e in got_b] == ["D2"]
        assert got_a[0].data["label"] == "moved to demo" and got_a[0].data["owner"] == ANA
        assert await poller.poll_once() == 0

    asyncio.run(run())
