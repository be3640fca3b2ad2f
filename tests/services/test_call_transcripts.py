"""Call transcripts are recorded once, in sequence order, whatever the delivery order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.ports import TranscriptStarted, TranscriptStopped
from touchflow.services.call_transcripts import (
    CallTranscripts,
    purge_transcripts,
    read_call_transcript,
)
from touchflow.store.schema import call_segments, call_transcripts

T0 = datetime(2026, 12, 6, 10, tzinfo=UTC)
SID = "CA" + "1" * 32


def seg(seq: int, text: str, *, final: bool = True, track: str = "outbound_track",
        sid: str = SID, at: datetime = T0) -> TranscriptSegment:  # fmt: skip
    return TranscriptSegment(
        call_sid=sid, track=track, seq=seq, said_by=Speaker.PROSPECT, text=text,
        final=final, at=at + timedelta(seconds=seq), stability=None if final else 0.4,
    )  # fmt: skip


def _stored(db, sid=SID):
    with db.connect() as conn:
        return read_call_transcript(conn, sid)


def test_the_same_segment_twice_is_stored_once_and_new_once(db):
    seen = []
    stream = CallTranscripts(db, on_new=seen.append)
    start = TranscriptStarted(call_sid=SID, at=T0, source="twilio", language="en-US")
    assert stream.publish([start]) == [start]
    assert stream.publish([seg(1, "we use acme")]) == [seg(1, "we use acme")]
    assert stream.publish([seg(1, "we use acme")]) == []
    assert stream.publish([start]) == []
    assert [e for batch in seen for e in batch] == [start, seg(1, "we use acme")]
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(call_segments)).scalar() == 1


def test_a_final_replaces_its_partial_and_a_late_partial_changes_nothing(db):
    stream = CallTranscripts(db)
    assert stream.publish([seg(3, "what is the", final=False)])
    assert stream.publish([seg(3, "what is the", final=False)]) == []  # redelivered partial
    assert stream.publish([seg(3, "what is the price")])  # final replaces partial
    assert stream.publish([seg(3, "what is", final=False)]) == []  # late partial: ignored
    (only,) = _stored(db).segments
    assert (only.text, only.final) == ("what is the price", True)


def test_segments_out_of_order_are_stored_in_sequence_and_each_once(db):
    stream = CallTranscripts(db)
    segs = [seg(i, f"word {i}") for i in range(1, 21)]
    shuffled = segs * 2
    random.Random(7).shuffle(shuffled)
    new = []
    for i in range(0, len(shuffled), 5):
        new += stream.publish(shuffled[i : i + 5])
    assert sorted(new, key=lambda s: s.seq) == segs  # every segment new exactly once
    assert [s.seq for s in _stored(db).segments] == list(range(1, 21))


def test_a_call_ending_mid_sentence_keeps_what_was_said_and_ends_once(db):
    stream = CallTranscripts(db)
    stream.publish([TranscriptStarted(call_sid=SID, at=T0, source="twilio")])
    stream.publish([seg(1, "send me the pric", final=False)])
    stop = TranscriptStopped(call_sid=SID, at=T0 + timedelta(minutes=2))
    assert stream.publish([stop]) == [stop]
    assert stream.publish([stop]) == []
    # The final of the cut sentence arrives after the stop: still recorded.
    assert stream.publish([seg(1, "send me the pricing")])
    row = _stored(db)
    assert row.status == "ended" and row.ended_at == T0 + timedelta(minutes=2)
    assert [(s.text, s.final) for s in row.segments] == [("send me the pricing", True)]


def test_a_segment_before_the_start_makes_the_call_and_the_start_fills_it_in(db):
    stream = CallTranscripts(db)
    stream.publish([seg(1, "hello")])
    start = TranscriptStarted(call_sid=SID, at=T0, source="twilio", language="de-DE",
                              consent="announced")  # fmt: skip
    assert stream.publish([start]) == []
    row = _stored(db)
    assert (row.status, row.language, row.consent) == ("live", "de-DE", "announced")


def test_purge_deletes_transcripts_past_retention_only(db):
    stream = CallTranscripts(db)
    old, recent = "CA" + "2" * 32, "CA" + "3" * 32
    stream.publish([
        TranscriptStarted(call_sid=old, at=T0 - timedelta(days=40), source="twilio"),
        seg(1, "old words", sid=old, at=T0 - timedelta(days=40)),
        TranscriptStarted(call_sid=recent, at=T0 - timedelta(days=2), source="twilio"),
        seg(1, "new words", sid=recent, at=T0 - timedelta(days=2)),
    ])  # fmt: skip
    with db.begin() as conn:
        assert purge_transcripts(conn, T0, 30) == (1, 1)
    with db.begin() as conn:
        assert purge_transcripts(conn, T0, 30) == (0, 0)
        assert conn.execute(select(call_transcripts.c.call_sid)).scalars().all() == [recent]
    with pytest.raises(ValueError), db.begin() as conn:
        purge_transcripts(conn, T0, -1)


def test_the_group_commit_writer_stores_and_hands_on_what_one_by_one_would(db):
    """Many publishes in one batch (repeats, a partial and its final, out of order, two
    calls, a start after its segments) give the rows and the new events that publishing
    them one by one gives."""
    from touchflow.services.transcript_writer import TranscriptWriter, record_batch

    other = "CA" + "2" * 32
    rnd = random.Random(3)
    publishes = [
        [seg(2, "two")], [seg(1, "one", final=False)], [seg(1, "one")], [seg(1, "one")],
        [seg(1, "on", final=False)], [seg(3, "x", sid=other), seg(1, "y", sid=other)],
        [seg(2, "two")], [TranscriptStarted(call_sid=other, at=T0, source="twilio",
                                            language="en-US")],
        [seg(4, "four", track="inbound_track"), seg(4, "four", track="inbound_track")],
    ]  # fmt: skip
    expected = []
    one_by_one = CallTranscripts(db)
    for events in publishes:
        expected.append(one_by_one.publish(events))
    want = {sid: _stored(db, sid) for sid in (SID, other)}
    with db.begin() as conn:
        purge_transcripts(conn, T0 + timedelta(days=400), 0)
    with db.begin() as conn:
        got = record_batch(conn, publishes, source="twilio")
    # Within one batch a segment's repeat is judged against the first: the same verdicts.
    # Only the start differs: a batch applies starts first (as one publish does), so it
    # made the call's row (news) where, one by one, a segment had made it already.
    assert got[:7] == expected[:7] and got[8] == expected[8]
    assert expected[7] == [] and [type(e).__name__ for e in got[7]] == ["TranscriptStarted"]
    for sid, row in want.items():
        assert _stored(db, sid).segments == row.segments

    seen: list = []
    stream = CallTranscripts(db, on_new=seen.append)
    writer = TranscriptWriter(db, stream)
    done: list = []
    shuffled = [[seg(9, "late")], [seg(8, "eight")], [seg(9, "late")]]
    rnd.shuffle(shuffled)
    for events in shuffled:
        writer.submit(events, done.append)
    assert writer.flush()
    writer.close()
    assert sorted(len(d) for d in done[:3]) == [0, 1, 1]  # the repeat is no news
    assert [s.seq for s in _stored(db).segments if s.track == "outbound_track"] == [1, 2, 8, 9]
    assert sorted(e.seq for batch in seen for e in batch) == [8, 9]
