"""After the call: the stored transcript replayed into a summary on the task, once; its
trackers steering the cadence (``tracker()``), its score events moving the score; the
sweep for calls that never stopped. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from tests.conftest import ROOT
from tests.support.harness import CADENCE_YAML, Harness, make_cadence, prospect
from touchflow.domain.guidance import load_guidance
from touchflow.domain.scoring import load_icp
from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.ports import TranscriptStarted, TranscriptStopped
from touchflow.services.call_summaries import CallSummaries
from touchflow.services.call_transcripts import CallTranscripts
from touchflow.store.call_summaries import summary_of_call, summary_of_task
from touchflow.store.enrollments import enrollment_rows, load_views
from touchflow.store.schema import (
    call_summaries,
    call_tracker_hits,
    call_transcripts,
    enrollments,
    events,
    prospects,
    touches,
)
from touchflow.store.scores import rescore
from touchflow.store.tasks import list_tasks

MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
CALL_DAY = MON + timedelta(days=2, hours=1)  # Wednesday: call-1's task is due
PRICING, QUIET = "ann@acme.example", "bob@globex.example"

# The test cadence, with a step only for calls where pricing came up and one for the rest.
BRANCHY = CADENCE_YAML.replace(
    """  - id: bump
    after: 1 business day
    channel: email
    thread: intro
    template: email/bump.txt.j2
""",
    """  - id: pricing-follow-up
    after: 1 business day
    channel: email
    thread: intro
    template: email/bump.txt.j2
    when: "tracker('call-1', 'pricing')"
  - id: bump
    after: 1 business day
    channel: email
    thread: intro
    template: email/bump.txt.j2
    when: "not tracker('call-1', 'pricing')"
""",
)


@pytest.fixture(scope="module")
def guidance() -> Any:
    return load_guidance(ROOT / "config" / "guidance.yaml")


@pytest.fixture(scope="module")
def icp() -> Any:
    return load_icp(ROOT / "config" / "icp.yaml")


def seg(sid: str, track: str, seq: int, who: Speaker, text: str, at: datetime,
        final: bool = True) -> TranscriptSegment:  # fmt: skip
    return TranscriptSegment(call_sid=sid, track=track, seq=seq, said_by=who, text=text,
                             final=final, at=at, language="en-US")  # fmt: skip


REP, PROSPECT = Speaker.REP, Speaker.PROSPECT
IN, OUT = "inbound_track", "outbound_track"
#: (track, seq, speaker, text, seconds into the call, final)
PRICING_LINES = [
    (IN, 1, REP, "Hi Ann, what tools do you use today?", 2, True),
    (OUT, 1, PROSPECT, "We use Gong for call recording.", 8, True),
    (OUT, 2, PROSPECT, "How much does it cost per seat?", 20, True),
    (IN, 2, REP, "It depends on the team size. What is your timeline?", 30, True),
    # Cut off by the hang-up: the partial still counts.
    (OUT, 3, PROSPECT, "Probably next quarter, send me the", 41, False),
]
QUIET_LINES = [
    (IN, 1, REP, "Hi Bob, is now a good time?", 1, True),
    (OUT, 1, PROSPECT, "Not really, call me later.", 5, True),
]


def scripted_call(
    sid: str, task_id: int | None, t0: datetime, lines: list[Any], stop_after: int | None
) -> list[Any]:
    """A call: started, its lines, stopped ``stop_after`` seconds in (None: never stopped)."""
    out: list[Any] = [
        TranscriptStarted(call_sid=sid, at=t0, source="twilio", language="en-US", task_id=task_id)
    ]
    for track, seq, who, text, secs, final in lines:
        out.append(seg(sid, track, seq, who, text, t0 + timedelta(seconds=secs), final))
    if stop_after is not None:
        out.append(TranscriptStopped(call_sid=sid, at=t0 + timedelta(seconds=stop_after)))
    return out


def pricing_call(sid: str, task_id: int | None, t0: datetime) -> list[Any]:
    return scripted_call(sid, task_id, t0, PRICING_LINES, 50)


def quiet_call(sid: str, task_id: int | None, t0: datetime) -> list[Any]:
    return scripted_call(sid, task_id, t0, QUIET_LINES, 12)


def _world(db: Any, tmp_path: Any) -> tuple[Harness, dict[str, Any]]:
    h = Harness(db, make_cadence(tmp_path, BRANCHY))
    h.add([prospect(PRICING), prospect(QUIET, first_name="Bob")], MON - timedelta(days=1))
    h.tick(MON)
    h.tick(CALL_DAY)
    with db.connect() as conn:
        by_email = {t.email: t for t in list_tasks(conn)}
    assert set(by_email) == {PRICING, QUIET}
    return h, by_email


def _score(db: Any, email: str) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(select(prospects.c.score).where(prospects.c.email == email)).scalar_one()
        )


def test_a_stopped_call_is_summarised_on_its_task_once_and_moves_the_score(
    db, tmp_path, guidance, icp
):
    _, tasks_ = _world(db, tmp_path)
    with db.begin() as conn:
        rescore(conn, icp, CALL_DAY)
    before = _score(db, PRICING)
    summaries = CallSummaries(db, guidance, icp=icp)
    stream = CallTranscripts(db, on_ended=summaries.on_ended)
    task = tasks_[PRICING]
    stream.publish(pricing_call("CA-pricing", task.id, CALL_DAY))

    with db.connect() as conn:
        (stored,) = summary_of_task(conn, task.id)
    s = stored.summary
    assert stored.call_sid == "CA-pricing" and stored.enrollment_id == task.enrollment_id
    heard = {t.tracker: [(m.said_by, round(m.offset_s)) for m in t.moments] for t in s.trackers}
    assert heard["competitor"] == [("prospect", 8)]
    assert heard["pricing"] == [("prospect", 20)]
    assert s.checklist["timeline"] is True
    assert s.talk.rep_words > 0 and s.talk.prospect_words > 0
    assert s.questions_by_rep == 2 and s.questions_by_prospect == 1
    assert s.longest_monologue is not None
    # The call ended mid-sentence: the last partial is in the talk.
    assert s.talk.prospect_words == 6 + 7 + 6

    # Engagement: asked_for_pricing (15) and competitor_mentioned (10), once per call.
    assert _score(db, PRICING) == before + 25
    again = summaries.summarise("CA-pricing", CALL_DAY + timedelta(hours=1))
    assert again is not None and again.summary == s
    stream.publish([TranscriptStopped(call_sid="CA-pricing", at=CALL_DAY + timedelta(hours=2))])
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(call_summaries)).scalar() == 1
        hits = conn.execute(select(call_tracker_hits.c.tracker, call_tracker_hits.c.task_id)).all()
        kinds = conn.execute(
            select(events.c.type).where(events.c.source == "call_summary").order_by(events.c.type)
        ).scalars().all()  # fmt: skip
    assert sorted(hits) == sorted(
        [(name, task.id) for name, moments in heard.items() for _ in moments]
    )
    assert kinds == ["asked_for_pricing", "competitor_mentioned"]
    assert _score(db, PRICING) == before + 25


def test_tracker_conditions_take_or_skip_the_step_after_the_call(db, tmp_path, guidance):
    h, tasks_ = _world(db, tmp_path)
    stream = CallTranscripts(db, on_ended=CallSummaries(db, guidance).on_ended)
    stream.publish(pricing_call("CA-p", tasks_[PRICING].id, CALL_DAY))
    stream.publish(quiet_call("CA-q", tasks_[QUIET].id, CALL_DAY))
    h.complete_due_tasks(CALL_DAY + timedelta(minutes=5), outcome="connected")
    h.tick(CALL_DAY + timedelta(days=1, hours=1))
    h.tick(CALL_DAY + timedelta(days=2, hours=1))  # a skipped step's next counts from its skip
    with db.connect() as conn:
        rows = conn.execute(
            select(prospects.c.email, touches.c.step_id, touches.c.status)
            .join(enrollments, enrollments.c.prospect_id == prospects.c.id)
            .join(touches, touches.c.enrollment_id == enrollments.c.id)
            .where(touches.c.step_id.in_(("pricing-follow-up", "bump")))
        ).all()
    assert sorted(rows) == [
        (PRICING, "bump", "skipped"),
        (PRICING, "pricing-follow-up", "sent"),
        (QUIET, "bump", "sent"),
        (QUIET, "pricing-follow-up", "skipped"),
    ]


def test_the_views_read_trackers_in_the_task_query_and_nothing_without_tasks(
    db, tmp_path, guidance
):
    h, tasks_ = _world(db, tmp_path)
    CallTranscripts(db, on_ended=CallSummaries(db, guidance).on_ended).publish(
        pricing_call("CA-v", tasks_[PRICING].id, CALL_DAY)
    )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        statements.append(sql)

    def views(ids: list[int]) -> dict[int, Any]:
        statements.clear()
        with db.connect() as conn:
            rows = enrollment_rows(conn, ids)
            event.listen(db, "before_cursor_execute", count)
            try:
                return load_views(conn, rows, h.ticker.senders)
            finally:
                event.remove(db, "before_cursor_execute", count)

    ann = h.enrollment(PRICING).id
    got = views([ann])
    assert got[ann].executed["call-1"].trackers == {"competitor", "pricing", "timeline-asked"}
    assert len(statements) == 3  # touches, tasks with their trackers, events
    # A batch that never made a task: touches and events only.
    bob = [h.enrollment(QUIET).id]
    with db.begin() as conn:
        conn.execute(touches.delete().where(touches.c.step_id == "call-1",
                                            touches.c.enrollment_id.in_(bob)))  # fmt: skip
    views(bob)
    assert len(statements) == 2
    assert not any("call_tracker_hits" in sql for sql in statements)


def test_the_sweep_summarises_dropped_calls_and_ended_ones_that_lost_their_summary(
    db, tmp_path, guidance
):
    _, tasks_ = _world(db, tmp_path)
    plain = CallTranscripts(db)  # no after-call hook: as if the summary had failed
    dropped = [e for e in pricing_call("CA-dropped", tasks_[PRICING].id, CALL_DAY)
               if not isinstance(e, TranscriptStopped)]  # fmt: skip
    plain.publish(dropped)
    plain.publish(quiet_call("CA-ended", tasks_[QUIET].id, CALL_DAY))
    recent = CALL_DAY + timedelta(minutes=50)
    plain.publish(quiet_call("CA-live", None, recent)[:2])  # still talking
    summaries = CallSummaries(db, guidance, idle=timedelta(minutes=30))
    report = summaries.sweep(CALL_DAY + timedelta(hours=1))
    assert sorted(report.summarised) == ["CA-dropped", "CA-ended"] and not report.failed
    with db.connect() as conn:
        status = dict(
            conn.execute(select(call_transcripts.c.call_sid, call_transcripts.c.status)).all()
        )
        dropped_summary = summary_of_call(conn, "CA-dropped")
    assert status == {"CA-dropped": "ended", "CA-ended": "ended", "CA-live": "live"}
    assert dropped_summary is not None
    # Ended at its last segment, not at the sweep.
    assert dropped_summary.summary.ended_at == CALL_DAY + timedelta(seconds=41)
    assert summaries.sweep(CALL_DAY + timedelta(hours=1)).summarised == []
    later = summaries.sweep(recent + timedelta(hours=1))
    assert later.summarised == ["CA-live"]


@pytest.mark.parametrize("crm_backend", ["fake", "hubspot"])
def test_the_summary_is_logged_to_the_crm_as_the_call_activity_once(
    db, tmp_path, guidance, crm_backend
):
    from tests.adapters.crm.backends import BACKENDS
    from touchflow.services.crm_sync import drain_outbox, queue_new_call_summaries
    from touchflow.store.schema import crm_links

    _, tasks_ = _world(db, tmp_path)
    CallTranscripts(db, on_ended=CallSummaries(db, guidance).on_ended).publish(
        pricing_call("CA-crm", tasks_[PRICING].id, CALL_DAY)
    )
    later = CALL_DAY + timedelta(minutes=10)
    with BACKENDS[crm_backend]() as (crm, standin):
        for _ in range(2):  # queued and drained twice: one activity
            with db.begin() as conn:
                queue_new_call_summaries(conn, crm.name, later)
            report = drain_outbox(db, crm, later)
            assert report.failed == 0
        with db.connect() as conn:
            (activity_id,) = conn.execute(
                select(crm_links.c.external_id).where(
                    crm_links.c.kind == "activity", crm_links.c.local_key == "call-summary:CA-crm"
                )
            ).scalars()
        if standin is None:
            assert crm.count("activity") == 1  # type: ignore[attr-defined]
            logged = crm.activities[activity_id]  # type: ignore[attr-defined]
            kind, subject, body = logged["kind"], logged["subject"], logged["body"]
        else:
            assert standin.count("activity") == 1
            record = standin.record("activity", activity_id)
            kind = record["type"].removesuffix("s")
            subject, body = record["hs_call_title"], record["hs_call_body"]
    assert kind == "call"
    assert subject.startswith("Call summary: ") and "pricing" in subject
    assert "  pricing (1x)" in body and '0:20 prospect: "How much does it cost per seat?"' in body
    assert "Checklist (1/5):" in body and "[x] timeline" in body
    assert "Questions asked: 2 by the rep, 1 by the prospect" in body
