"""Live guidance in a serve process: transcript events in, cards recorded once and published
to the call's owner only; the real store, the real transcript port, the real live hub."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.support.harness import Harness, make_cadence, prospect
from touchflow.domain.access import Viewer
from touchflow.domain.guidance import Guidance, load_guidance
from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.entrypoints.api.live import LiveHub
from touchflow.ports import TranscriptStarted, TranscriptStopped
from touchflow.services.call_guidance import CallGuidance, guidance_state, topic_of
from touchflow.services.call_transcripts import CallTranscripts
from touchflow.store.schema import call_cards
from touchflow.store.tasks import list_tasks

ROOT = Path(__file__).resolve().parents[2]
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
T0 = MON + timedelta(days=2, hours=2)
ANA, BEN = "ana@x.example", "ben@x.example"
PROSPECT, REP = "outbound_track", "inbound_track"

# A scripted call: (track, seq, text); the cards it must show, in order.
SCRIPT = [
    (REP, 1, "hi this is sam from touchflow do you have a minute"),
    (PROSPECT, 1, "sure we already use gong for this honestly"),
    (REP, 2, "what is your biggest challenge with it"),
    (PROSPECT, 2, "we are struggling with manual work and what is the price"),
    (REP, 3, "who is the decision maker and what budget did you set"),
    (PROSPECT, 3, "just send me something by email"),
    (REP, 4, "happy to and the next step is a calendar invite"),
]
CARDS = ["already-have-vendor", "competitor", "pricing", "send-me-something", "next-step"]


@pytest.fixture(scope="module")
def guidance() -> Guidance:
    return load_guidance(ROOT / "config" / "guidance.yaml")


@pytest.fixture
def tasks(db: Engine, tmp_path: Path) -> dict[str, int]:
    """One open call task of ANA's and one of BEN's."""
    h = Harness(db, make_cadence(tmp_path))
    h.add([prospect("ann@acme.example")], MON - timedelta(days=2), owner=ANA)
    h.add([prospect("cy@globex.example")], MON - timedelta(days=2), owner=BEN)
    h.tick(MON)
    h.tick(MON + timedelta(days=2, hours=1))
    with db.connect() as conn:
        rows = [t for t in list_tasks(conn) if t.channel == "call"]
    return {t.owner_email: t.id for t in rows}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any], str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, topic: str, kind: str, data: dict[str, Any], owner: str | None) -> None:
        with self.lock:
            self.events.append((topic, kind, data, owner))

    def cards(self, sid: str) -> list[str]:
        return [d["tracker"] for t, k, d, _ in self.events if t == topic_of(sid) and k == "card"]

    def kinds(self, sid: str) -> list[str]:
        return [k for t, k, _, _ in self.events if t == topic_of(sid)]


def _seg(sid: str, track: str, seq: int, text: str, *, final: bool = True,
         stability: float | None = None) -> TranscriptSegment:  # fmt: skip
    said_by = Speaker.REP if track == REP else Speaker.PROSPECT
    at = T0 + timedelta(seconds=10 * seq + (5 if track == PROSPECT else 0))
    return TranscriptSegment(sid, track, seq, said_by, text, final, at, "en",
                             stability=stability)  # fmt: skip


def _script(sid: str) -> list[TranscriptSegment]:
    return [_seg(sid, tr, seq, text) for tr, seq, text in SCRIPT]


def _service(db: Engine, guidance: Guidance, publish: Any, clock: list[datetime],
             origin: str = "p1") -> tuple[CallGuidance, CallTranscripts]:  # fmt: skip
    svc = CallGuidance(db, guidance, publish, clock=lambda: clock[0], origin=origin, tick_s=60)
    return svc, CallTranscripts(db, on_new=svc.on_new)


def _run_loop(coro: Any) -> Any:
    """``asyncio.run`` in a thread of its own: a session-wide loop (Playwright's, in the full
    suite) may be running in this one."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(coro)))
    thread.start()
    thread.join()
    assert out, "the event loop's coroutine raised (see the thread's traceback)"
    return out[0]


def _stored_cards(db: Engine, sid: str) -> list[str]:
    with db.connect() as conn:
        state = guidance_state(conn, None, sid)
    assert state is not None
    return [c["tracker"] for c in state["cards"]]


def test_a_scripted_call_shows_each_card_once_in_order_to_its_owner(db, guidance, tasks):
    rec, clock = Recorder(), [T0]
    svc, port = _service(db, guidance, rec, clock)
    sid = "CA" + "1" * 32
    port.publish([TranscriptStarted(sid, T0, "twilio", "en-US", tasks[ANA])])
    for seg in _script(sid):
        port.publish([seg])
    port.publish([TranscriptStopped(sid, T0 + timedelta(minutes=2))])
    assert rec.cards(sid) == CARDS
    assert {owner for *_, owner in rec.events} == {ANA}
    assert rec.kinds(sid)[-1] == "ended" and svc.live_sessions == 0  # evicted
    with db.connect() as conn:
        state = guidance_state(conn, guidance, sid)
    assert state is not None and state["status"] == "ended"
    assert [c["tracker"] for c in state["cards"]] == CARDS
    assert set(state["cards"][0]) == {"tracker", "card", "title", "said_by", "at", "text"}
    assert state["checklist"] == {
        "budget": True, "authority": True, "need": True, "timeline": False, "next-step": True
    }  # fmt: skip
    assert [s["text"] for s in state["segments"]][:2] == [SCRIPT[0][2], SCRIPT[1][2]]
    svc.close()


def test_twice_out_of_order_and_ending_mid_sentence_fire_every_card_once_in_order(
    db, guidance, tasks
):
    rec, clock = Recorder(), [T0]
    svc, port = _service(db, guidance, rec, clock)
    sid = "CA" + "2" * 32
    segs = _script(sid)
    port.publish([TranscriptStarted(sid, T0, "twilio", "en-US", tasks[ANA])])
    # Each track in reverse, every segment twice, the tracks interleaved.
    prospect_segs = [s for s in segs if s.track == PROSPECT]
    rep_segs = [s for s in segs if s.track == REP]
    for s in reversed(prospect_segs):
        port.publish([s])
    for s in reversed(rep_segs):
        port.publish([s])
        port.publish([s])
    for s in segs:
        port.publish([s])  # a redelivery of everything changes nothing
    # The prospect is cut off mid-sentence: a partial whose final never comes.
    port.publish([_seg(sid, PROSPECT, 4, "and how much does it", final=False, stability=0.3)])
    port.publish([_seg(sid, PROSPECT, 4, "and how much does it cost", final=False,
                       stability=0.4)])  # fmt: skip
    assert "pricing" not in rec.cards(sid)[3:]  # unstable partials fire nothing
    port.publish([TranscriptStopped(sid, T0 + timedelta(minutes=2))])
    got = rec.cards(sid)
    # In sequence order per track (the prospect's all came before the rep's last); the
    # cut-off question counts as said, but pricing's 90 s cooldown holds a second card.
    assert got == CARDS
    assert _stored_cards(db, sid) == got
    with db.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(call_cards).where(call_cards.c.call_sid == sid)
        ).scalar_one()
    assert n == len(got) + 4  # and the four checklist ticks
    svc.close()


def test_a_restarted_or_second_process_rebuilds_the_call_and_shows_nothing_twice(
    db, guidance, tasks
):
    sid = "CA" + "3" * 32
    segs = _script(sid)
    first, clock = Recorder(), [T0]
    svc1, port1 = _service(db, guidance, first, clock, origin="p1")
    port1.publish([TranscriptStarted(sid, T0, "twilio", "en-US", tasks[BEN])])
    for s in segs[:4]:
        port1.publish([s])
    assert first.cards(sid) == CARDS[:3]
    svc1.close()
    # Another process (or this one after a restart) gets the rest of the call.
    second = Recorder()
    svc2, port2 = _service(db, guidance, second, clock, origin="p2")
    for s in segs[4:]:
        port2.publish([s])
    assert svc2.rebuilt == 1
    assert second.cards(sid) == CARDS[3:]  # the first three are not shown again
    assert {owner for *_, owner in second.events} == {BEN}
    assert _stored_cards(db, sid) == CARDS
    # Its transcript updates are only the new segments (the replay is silent).
    assert [d["seq"] for t, k, d, _ in second.events if k == "transcript"] == [3, 3, 4]
    svc2.close()


def test_not_said_within_fires_from_the_tick_once(db, guidance, tasks):
    rec, clock = Recorder(), [T0]
    svc, port = _service(db, guidance, rec, clock)
    sid = "CA" + "4" * 32
    port.publish([TranscriptStarted(sid, T0, "twilio", "en-US", tasks[ANA])])
    port.publish([_seg(sid, REP, 1, "hi this is sam")])
    clock[0] = T0 + timedelta(seconds=299)
    svc.tick()
    assert rec.cards(sid) == []
    clock[0] = T0 + timedelta(seconds=301)
    svc.tick()
    svc.tick()
    assert rec.cards(sid) == ["timeline-asked"]
    assert _stored_cards(db, sid) == ["timeline-asked"]
    svc.close()


def test_fifty_concurrent_calls_keep_their_cards_apart_across_reps(db, guidance, tasks):
    """50 calls at once on one process (25 ANA's, 25 BEN's), through the real hub."""
    sids = [f"CA{n:032d}" for n in range(50)]
    owner_of = {sid: (ANA if n % 2 == 0 else BEN) for n, sid in enumerate(sids)}
    viewers = {
        ANA: Viewer(ANA, "rep", frozenset({ANA})),
        BEN: Viewer(BEN, "rep", frozenset({BEN})),
        "admin": Viewer("admin@x.example", "admin", None),
    }

    async def run() -> dict[str, list[Any]]:
        hub = LiveHub(queue_size=100_000)
        subs = {name: hub.subscribe(v, [topic_of(s) for s in sids])[0]
                for name, v in viewers.items()}  # fmt: skip

        def publish(topic: str, kind: str, data: dict[str, Any], owner: str | None) -> None:
            hub.publish(topic, kind, data, owner=owner)

        svc = CallGuidance(db, guidance, publish, clock=lambda: T0, origin="p", tick_s=60)
        port = CallTranscripts(db, on_new=svc.on_new)

        def call(sid: str) -> None:
            port.publish([TranscriptStarted(sid, T0, "twilio", "en-US", tasks[owner_of[sid]])])
            for s in _script(sid):
                port.publish([s])
            port.publish([TranscriptStopped(sid, T0 + timedelta(minutes=2))])

        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, call, s) for s in sids))
        await asyncio.sleep(0.05)  # deliveries scheduled from the worker threads
        svc.close()
        out: dict[str, list[Any]] = {}
        for name, sub in subs.items():
            out[name] = []
            while not sub.queue.empty():
                out[name].append(sub.queue.get_nowait())
        return out

    got = _run_loop(run())
    for rep in (ANA, BEN):
        mine = {topic_of(s) for s in sids if owner_of[s] == rep}
        assert {e.topic for e in got[rep]} == mine  # never another rep's call
        assert all(e.owner == rep for e in got[rep])
    for sid in sids:
        for name in (owner_of[sid], "admin"):
            cards = [e.data["tracker"] for e in got[name]
                     if e.topic == topic_of(sid) and e.kind == "card"]  # fmt: skip
            assert cards == CARDS, (sid, name, cards)
        assert _stored_cards(db, sid) == CARDS


def test_a_call_that_ends_mid_sentence_counts_what_was_heard(db, guidance, tasks):
    rec, clock = Recorder(), [T0]
    svc, port = _service(db, guidance, rec, clock)
    sid = "CA" + "5" * 32
    port.publish([TranscriptStarted(sid, T0, "twilio", "en-US", tasks[ANA])])
    port.publish([_seg(sid, REP, 1, "hi this is sam")])
    port.publish([_seg(sid, PROSPECT, 1, "ok so what is the price of", final=False,
                       stability=0.2)])  # fmt: skip
    assert rec.cards(sid) == []  # an unstable partial fires nothing
    port.publish([TranscriptStopped(sid, T0 + timedelta(seconds=30))])
    assert rec.cards(sid) == ["pricing"]
    assert _stored_cards(db, sid) == ["pricing"]
    svc.close()


def test_another_process_s_cards_reach_this_process_s_screens(db, guidance, tasks):
    """Process A has the call; a screen on process B gets A's cards from B's poller."""
    from touchflow.entrypoints.api.call_screen import CallCardPoller

    sid = "CA" + "6" * 32

    async def run() -> tuple[list[Any], list[Any], int]:
        hub_b = LiveHub()
        rep_b, _ = hub_b.subscribe(Viewer(BEN, "rep", frozenset({BEN})), [topic_of(sid)])
        other, _ = hub_b.subscribe(Viewer(ANA, "rep", frozenset({ANA})), [topic_of(sid)])

        def tx(fn: Any) -> Any:
            with db.begin() as conn:
                return fn(conn)

        poller = CallCardPoller(hub_b, tx, 0.01)
        poller._mark = await asyncio.to_thread(tx, lambda conn: 0)
        svc_a, port_a = _service(db, guidance, Recorder(), [T0], origin="process-a")
        await asyncio.to_thread(
            port_a.publish, [TranscriptStarted(sid, T0, "twilio", "en-US", tasks[BEN])]
        )
        for s in _script(sid)[:4]:
            await asyncio.to_thread(port_a.publish, [s])
        sent = await poller.poll_once()
        again = await poller.poll_once()  # the high-water mark moved: nothing twice
        svc_a.close()
        out = []
        while not rep_b.queue.empty():
            out.append(rep_b.queue.get_nowait())
        leaked = []
        while not other.queue.empty():
            leaked.append(other.queue.get_nowait())
        return out, leaked, sent + again

    got, leaked, sent = _run_loop(run())
    assert [e.data["tracker"] for e in got if e.kind == "card"] == CARDS[:3]
    assert [e.data["item"] for e in got if e.kind == "checklist"] == ["need"]
    assert leaked == [] and sent == len(got)
