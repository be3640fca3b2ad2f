"""The tick's ledger protocol against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from tests.support.harness import (
    CADENCE_YAML,
    SENDER,
    TEMPLATES,
    Harness,
    cadence_yaml,
    make_cadence,
    prospect,
)
from touchflow.adapters.fakes import FakeEmailSender
from touchflow.domain.compliance import CapPolicy, MailboxCaps
from touchflow.domain.simulate import SimEvent, simulate
from touchflow.domain.unsubscribe import DEV_UNSUBSCRIBE_SECRET, verify
from touchflow.errors import (
    DeliveryUnknown,
    FatalError,
    RecipientRejected,
    RetryableError,
)
from touchflow.store.enrollments import enroll
from touchflow.store.prospects import upsert_prospects
from touchflow.store.schema import enrollments, events, prospects, tasks, touches
from touchflow.store.status import status

SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday


@pytest.fixture
def h(db, tmp_path):
    return Harness(db, make_cadence(tmp_path))


def _touches(h, **where):
    q = select(touches).order_by(touches.c.id)
    for k, v in where.items():
        q = q.where(touches.c[k] == v)
    with h.engine.connect() as conn:
        return list(conn.execute(q))


def test_first_touch_waits_for_each_prospects_window(h):
    h.add(
        [
            prospect("ny@x.example"),
            prospect("be@x.example", "Europe/Berlin", "DE"),
            prospect("tk@x.example", "Asia/Tokyo", "JP"),
        ],
        SAT,
    )
    ny, be, tk = (h.enrollment(e) for e in ("ny@x.example", "be@x.example", "tk@x.example"))
    assert ny.next_due_at == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Mon 09:00 New York
    assert be.next_due_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Mon 09:00 Berlin
    assert tk.next_due_at == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Mon 09:00 Tokyo

    # A tick that runs late (Tokyo is at 23:00) sends to New York and Berlin only.
    report = h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    assert (report.sent, report.deferred) == (2, 1)
    assert sorted(m.to_addr for m in h.email.sent) == ["be@x.example", "ny@x.example"]
    assert h.enrollment("tk@x.example").next_due_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    for m in h.email.sent:
        # A signed one-click token for exactly this touch.
        token = m.list_unsubscribe_url.rsplit("/", 1)[1]
        assert verify(token, DEV_UNSUBSCRIBE_SECRET) == m.touch_key
        assert m.message_id.startswith("<tf.") and m.message_id.endswith("@touchflow.example>")


def test_a_second_tick_at_the_same_time_sends_nothing(h):
    h.add([prospect(f"p{i}@x.example") for i in range(5)], SAT)
    now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert h.tick(now).sent == 5
    assert h.tick(now).sent == 0
    assert h.tick(now + timedelta(minutes=5)).sent == 0
    assert len(h.email.sent) == 5
    assert len({m.touch_key for m in h.email.sent}) == 5


def test_production_matches_the_simulation(h):
    """Sent and skipped alike: a Berlin landline takes no text, a prospect without a phone
    neither a call nor a text; the simulation shows the same skips, at the same times."""
    people = [
        prospect("ny@x.example"),
        prospect("be@x.example", "Europe/Berlin", "DE", phone="+493012345678"),
        prospect("np@x.example", phone=None),
    ]
    h.add(people, SAT)
    h.run_until(SAT + timedelta(days=30))
    sim = simulate(h.cadence, people, start=SAT, days=30, sender=SENDER)
    sim_touches = [
        (r["prospect"], r["step"], r["at"], r["status"], r.get("reason"))
        for r in sim
        if "step" in r
    ]
    with h.engine.connect() as conn:
        rows = conn.execute(
            select(
                touches.c.key,
                touches.c.step_id,
                touches.c.channel,
                touches.c.executed_at,
                touches.c.status,
                touches.c.error,
                touches.c.enrollment_id,
            ).order_by(touches.c.executed_at)
        ).all()
    emails = {h.enrollment(p.email).id: p.email for p in people}
    task_channels = ("call", "linkedin", "task")
    prod = [
        (
            emails[r.enrollment_id],
            r.step_id,
            r.executed_at.isoformat(),
            "task" if r.status == "sent" and r.channel in task_channels else r.status,
            r.error,
        )
        for r in rows
    ]
    assert sorted(prod) == sorted(sim_touches)
    assert {(p[0], p[1], p[4]) for p in prod if p[3] == "skipped"} == {
        ("be@x.example", "nudge", "no_phone"),
        ("np@x.example", "call-1", "no_phone"),
        ("np@x.example", "nudge", "no_phone"),
    }
    assert len(prod) == 15  # intro, call, bump, sms, breakup for each
    for email in emails.values():
        e = h.enrollment(email)
        assert (e.state, e.reason) == ("finished", "completed")
    # Every email touch went out inside 09:00-17:00 local on a weekday.
    for p in people:
        for r in sim:
            if r.get("prospect") == p.email and "step" in r:
                local = datetime.fromisoformat(r["at"]).astimezone(ZoneInfo(p.timezone))
                assert local.weekday() < 5 and 9 <= local.hour < 17


def test_threaded_bump_replies_to_the_intro(h):
    h.add([prospect("ny@x.example")], SAT)
    h.run_until(SAT + timedelta(days=6))
    intro, bump = h.email.sent[0], h.email.sent[1]
    assert bump.in_reply_to == intro.message_id
    assert bump.references == (intro.message_id,)
    assert bump.subject == f"Re: {intro.subject}"


def test_manual_step_waits_for_its_task(h):
    h.add([prospect("ny@x.example")], SAT)
    h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    wed = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # intro + 2 business days
    report = h.tick(wed)
    assert report.tasks == 1
    e = h.enrollment("ny@x.example")
    assert (e.state, e.reason, e.next_due_at) == ("active", "waiting_task:call-1", None)
    # Days pass; nothing happens until the SDR completes the call.
    assert h.tick(wed + timedelta(days=5)).claimed == 0
    done_at = datetime(2026, 12, 9, 16, 0, tzinfo=UTC)
    assert h.complete_due_tasks(done_at, outcome="voicemail") == 1
    e = h.enrollment("ny@x.example")
    # The bump is one business day after the task's completion, same wall clock.
    assert e.next_due_at == datetime(2026, 12, 10, 16, 0, tzinfo=UTC)
    with h.engine.connect() as conn:
        task = conn.execute(select(tasks)).one()
    assert (task.status, task.outcome, task.channel) == ("done", "voicemail", "call")
    assert "Call Ann about Acme" in task.body


def test_missing_field_holds_the_enrollment_until_fixed(h):
    h.add([prospect("nt@x.example", title=None)], SAT)
    report = h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    assert (report.sent, report.held) == (0, 1)
    e = h.enrollment("nt@x.example")
    assert (e.state, e.reason, e.next_due_at) == ("pending", "missing_data:prospect.title", None)
    assert h.email.sent == []
    with h.engine.begin() as conn:
        upsert_prospects(
            conn, [prospect("nt@x.example", title="CRO")], datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
        )
    assert h.tick(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)).sent == 1
    assert "As CRO at Acme" in h.email.sent[0].text


def test_reply_ends_the_enrollment_and_nothing_more_is_sent(h):
    h.add([prospect("ny@x.example")], SAT)
    h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    res = h.exit_event("ny@x.example", "reply", datetime(2026, 11, 30, 18, 0, tzinfo=UTC))
    assert res.ended == 1
    h.run_until(SAT + timedelta(days=30))
    assert len(h.email.sent) == 1
    e = h.enrollment("ny@x.example")
    assert (e.state, e.reason) == ("finished", "replied")


def test_unsubscribe_is_global_and_permanent(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path))
    other = make_cadence(tmp_path / "o", cadence_yaml("other-cadence", exit_on="reply"))
    h.add([prospect("ny@x.example")], SAT)
    with h.engine.begin() as conn:
        enroll(conn, h.runtimes.add(other), None, owner_email="o@x", sender=SENDER, now=SAT)
    res = h.exit_event("ny@x.example", "unsubscribe", SAT)
    # Ends both, even the cadence whose exit_on does not list unsubscribe.
    assert res.ended == 2
    with h.engine.begin() as conn:
        again = enroll(conn, h.runtimes.add(other), None, owner_email="o@x", sender=SENDER, now=SAT)
        states = conn.execute(select(enrollments.c.state)).scalars().all()
    assert again.enrolled == 0
    assert states == ["opted_out", "opted_out"]
    h.run_until(SAT + timedelta(days=30))
    assert h.email.sent == []


def test_reply_not_in_exit_on_keeps_the_enrollment(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path, cadence_yaml(exit_on="bounce, unsubscribe")))
    h.add([prospect("ny@x.example")], SAT)
    h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    res = h.exit_event("ny@x.example", "reply", datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    with h.engine.connect() as conn:
        ev = conn.execute(select(events)).one()
    assert (res.ended, res.kept) == (0, 1)
    assert ev.type == "replied" and ev.touch_key == h.email.sent[0].touch_key


def test_when_condition_skips_a_step_after_an_open(h):
    h.add([prospect("ny@x.example")], SAT)
    h.run_until(datetime(2026, 12, 4, 0, 0, tzinfo=UTC))  # intro, call, bump sent
    bump = h.email.sent[-1]
    with h.engine.begin() as conn:
        e = h.enrollment("ny@x.example")
        conn.execute(
            events.insert().values(
                prospect_id=e.prospect_id,
                enrollment_id=e.id,
                touch_key=bump.touch_key,
                type="opened",
                occurred_at=SAT,
                source="test",
                created_at=SAT,
            )
        )
    h.run_until(SAT + timedelta(days=30))
    assert [t.step_id for t in _touches(h, status="skipped")] == ["breakup"]
    assert (h.enrollment("ny@x.example").state, h.enrollment("ny@x.example").reason) == (
        "finished",
        "completed",
    )


class FlakySender(FakeEmailSender):
    """Fails the first ``n`` attempts for one address with ``error``."""

    def __init__(self, error, n=1, who="ny@x.example"):
        super().__init__()
        self.error, self.n, self.who = error, n, who

    def send_batch(self, messages):
        from touchflow.ports import SendResult

        out = []
        for m in messages:
            if m.to_addr == self.who and self.n > 0:
                self.n -= 1
                out.append(SendResult(m.touch_key, error=self.error))
            else:
                out.extend(super().send_batch([m]))
        return out


def _err(cls, **kw):
    return cls("boom", connector="test", operation="send", **kw)


def test_retryable_error_is_retried_with_a_new_attempt_then_sent_once(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path), email=FlakySender(_err(RetryableError), n=2))
    h.add([prospect("ny@x.example")], SAT)
    mon = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert h.tick(mon).retrying == 1
    e = h.enrollment("ny@x.example")
    assert (e.attempt, e.reason) == (2, "retrying:test.send: boom")  # the connector's words
    assert e.next_due_at == mon + timedelta(minutes=15)
    assert h.tick(e.next_due_at).retrying == 1
    e = h.enrollment("ny@x.example")
    assert h.tick(e.next_due_at).sent == 1
    assert [t.status for t in _touches(h)] == ["failed", "failed", "sent"]
    assert [t.key.rsplit("-", 1)[1] for t in _touches(h)] == ["1", "2", "3"]
    assert len(h.email.sent) == 1


def test_recipient_rejected_bounces_the_prospect(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path), email=FlakySender(_err(RecipientRejected)))
    h.add([prospect("ny@x.example"), prospect("ok@x.example")], SAT)
    report = h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    assert (report.sent, report.bounced) == (1, 1)
    e = h.enrollment("ny@x.example")
    assert (e.state, e.reason, e.claimed_at) == ("bounced", "bounced", None)


def test_fatal_error_fails_visibly(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path), email=FlakySender(_err(FatalError), n=1))
    h.add([prospect("ny@x.example")], SAT)
    assert h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC)).failed == 1
    e = h.enrollment("ny@x.example")
    assert e.state == "failed" and e.reason.startswith("send_failed:")
    assert e.next_due_at is None and e.claimed_at is None


def test_delivery_unknown_is_never_resent(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path), email=FlakySender(_err(DeliveryUnknown)))
    h.add([prospect("ny@x.example")], SAT)
    assert h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC)).unknown == 1
    h.run_until(SAT + timedelta(days=30))
    assert h.email.sent == []
    assert [t.status for t in _touches(h)] == ["unknown"]
    assert h.enrollment("ny@x.example").reason == "delivery_unknown:intro"


def test_a_crash_after_claim_leaves_unknown_not_a_resend(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path))
    h.add([prospect("ny@x.example"), prospect("b@x.example")], SAT)
    mon = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)

    class Crash(Exception):
        pass

    def crash(_messages):
        raise Crash

    h.ticker.email.send_batch = crash
    with pytest.raises(Crash):
        h.ticker.run_batch(mon, 100)
    assert {t.status for t in _touches(h)} == {"sending"}
    # Within the lease another tick leaves them alone ...
    h.ticker.email = FakeEmailSender()
    assert h.tick(mon + timedelta(minutes=1)).sent == 0
    # ... after it, they become unknown and are never sent.
    with h.engine.connect() as conn:
        report = status(conn, h.runtimes)
    # In flight, not waiting: counted apart from the enrollments' states.
    (flying,) = report.in_flight
    assert (flying.cadence_id, flying.enrollments, flying.sending) == ("t-cadence", 2, 2)
    assert not report.enrollments_by_state
    h.ticker.lease = timedelta(0)
    assert h.tick(mon + timedelta(minutes=2)).unknown == 2
    assert {t.status for t in _touches(h)} == {"unknown"}
    assert h.ticker.email.sent == []


def test_enrollment_is_pinned_to_its_cadence_version(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path))
    h.add([prospect("old@x.example")], SAT)
    changed = dict(TEMPLATES)
    changed["email/intro.txt.j2"] = "NEW COPY {{ prospect.first_name }} {{ unsubscribe_url }}\n"
    newer = make_cadence(tmp_path, CADENCE_YAML, changed)
    assert newer.version != h.cadence.version
    with h.engine.begin() as conn:
        upsert_prospects(conn, [prospect("new@x.example")], SAT)
        enroll(conn, h.runtimes.add(newer), None, owner_email="o@x", sender=SENDER, now=SAT)
    h.runtimes = type(h.runtimes)("http://localhost:8000")  # a fresh worker process
    h.ticker.runtimes = h.runtimes
    h.tick(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    by_to = {m.to_addr: m.text for m in h.email.sent}
    assert by_to["old@x.example"].startswith("Hi Ann")
    assert by_to["new@x.example"].startswith("NEW COPY Ann")


def test_exit_event_during_send_is_not_undone(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path))
    h.add([prospect("ny@x.example")], SAT)
    real = h.ticker.email.send_batch

    def send_and_reply(messages):
        out = real(messages)
        h.exit_event("ny@x.example", "reply", datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
        return out

    h.ticker.email.send_batch = send_and_reply
    assert h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC)).sent == 1
    e = h.enrollment("ny@x.example")
    assert (e.state, e.reason, e.claimed_at) == ("finished", "replied", None)
    assert [t.status for t in _touches(h)] == ["sent"]


def test_simulation_events_match_production_exit(h):
    people = [prospect("ny@x.example")]
    sim = simulate(
        h.cadence,
        people,
        start=SAT,
        days=30,
        sender=SENDER,
        events=[SimEvent(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), "ny@x.example", "reply")],
    )
    assert [r.get("step") or r["exit"] for r in sim] == ["intro", "replied"]


def test_tick_does_not_send_to_a_prospect_suppressed_meanwhile(h):
    h.add([prospect("ny@x.example")], SAT)
    with h.engine.begin() as conn:
        from touchflow.store.schema import prospects as p_table

        conn.execute(update(p_table).values(opted_out_at=SAT))
    h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    assert h.email.sent == []
    assert h.enrollment("ny@x.example").state == "opted_out"


def test_a_country_without_a_holiday_calendar_still_gets_its_touches(h):
    # "AA" is a user-assigned ISO 3166 code: no holiday calendar exists for it.
    h.add([prospect("aa@x.example", "UTC", "AA", phone=None)], SAT)
    assert h.tick(datetime(2026, 11, 30, 10, 0, tzinfo=UTC)).sent == 1


def test_a_bounce_ends_even_an_enrollment_whose_cadence_kept_going(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path, cadence_yaml(exit_on="reply")))
    h.add([prospect("ny@x.example")], SAT)
    h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    res = h.exit_event("ny@x.example", "bounce", datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    assert (res.ended, res.kept) == (0, 1)
    h.run_until(SAT + timedelta(days=30))
    assert len(h.email.sent) == 1  # nothing after the bounce
    e = h.enrollment("ny@x.example")
    assert (e.state, e.reason, e.next_due_at) == ("bounced", "bounced", None)
    with h.engine.connect() as conn:
        assert len(conn.execute(select(events)).all()) == 1


def test_retry_requeues_a_failed_enrollment_under_a_new_key(db, tmp_path):
    from touchflow.store.enrollments import Retried, retry_enrollments

    h = Harness(db, make_cadence(tmp_path), email=FlakySender(_err(DeliveryUnknown)))
    h.add([prospect("ny@x.example")], SAT)
    mon = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert h.tick(mon).unknown == 1
    later = mon + timedelta(hours=1)
    with h.engine.begin() as conn:
        # It may have arrived: requeued only when the operator says it did not.
        assert retry_enrollments(conn, None, later) == Retried(0, (1,))
        assert retry_enrollments(conn, None, later, force=True) == Retried(1)
        assert retry_enrollments(conn, None, later, force=True) == Retried(0)
    assert h.tick(later).sent == 1
    assert [(t.key.rsplit("-", 1)[1], t.status) for t in _touches(h)] == [
        ("1", "unknown"),
        ("2", "sent"),
    ]
    assert h.enrollment("ny@x.example").state == "active"


def test_a_rejected_recipient_does_not_release_another_workers_claim(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path), email=FlakySender(_err(RecipientRejected)))
    # The other cadence does not exit on bounce, so the bounce leaves it running.
    other_yaml = cadence_yaml("other-cadence", exit_on="reply")
    h.add([prospect("ny@x.example")], SAT)
    with h.engine.begin() as conn:
        enroll(
            conn,
            h.runtimes.add(make_cadence(tmp_path / "o", other_yaml)),
            None,
            owner_email="o@x",
            sender=SENDER,
            now=SAT,
        )
        # Another worker holds the second enrollment mid-send.
        held_at = datetime.now(UTC)
        conn.execute(
            update(enrollments)
            .where(enrollments.c.cadence_id == "other-cadence")
            .values(claimed_at=held_at)
        )
    assert h.tick(datetime(2026, 11, 30, 14, 0, tzinfo=UTC)).bounced == 1
    with h.engine.connect() as conn:
        rows = {r.cadence_id: r for r in conn.execute(select(enrollments))}
    assert rows["t-cadence"].claimed_at is None
    assert rows["other-cadence"].claimed_at == held_at


class _Observing(FakeEmailSender):
    """Accepts messages and, before each sub-batch, notes the ledger's statuses."""

    def __init__(self, engine, crash_at: int | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.seen: list[dict[str, int]] = []
        self.crash_at = crash_at

    def send_batch(self, messages):
        with self.engine.connect() as conn:
            rows = conn.execute(select(touches.c.key, touches.c.status)).all()
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        mine = {m.touch_key for m in messages}
        assert {r.key for r in rows if r.status == "sending"} == mine
        self.seen.append(counts)
        if self.crash_at is not None and len(self.seen) > self.crash_at:
            raise KeyboardInterrupt("the worker dies mid-batch")
        return super().send_batch(messages)


def test_outcomes_are_recorded_in_sub_batches(db, tmp_path):
    sender = _Observing(db)
    h = Harness(db, make_cadence(tmp_path), email=sender, record_every=10)
    h.add([prospect(f"p{i}@x.example") for i in range(35)], SAT)
    report = h.tick(datetime(2026, 11, 30, 15, 0, tzinfo=UTC), batch=100)
    assert report.sent == 35
    # Only the sub-batch with the provider is `sending`; what went before is recorded.
    assert sender.seen == [
        {"sending": 10, "queued": 25},
        {"sent": 10, "sending": 10, "queued": 15},
        {"sent": 20, "sending": 10, "queued": 5},
        {"sent": 30, "sending": 5},
    ]
    assert {t.status for t in _touches(h)} == {"sent"}


def _mailbox_slots(engine) -> int:
    from sqlalchemy import func

    from touchflow.store.schema import send_counts

    with engine.connect() as conn:
        q = select(func.coalesce(func.sum(send_counts.c.n), 0)).where(
            send_counts.c.scope == "mailbox"
        )
        return int(conn.execute(q).scalar_one())


def test_a_crash_leaves_one_sub_batch_unknown_and_the_queued_rest_is_sent_later(db, tmp_path):
    now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    dying = _Observing(db, crash_at=2)
    caps = CapPolicy(MailboxCaps(hourly=None, daily=1000), {}, None)
    h = Harness(
        db, make_cadence(tmp_path), email=dying, record_every=10, lease=timedelta(0), caps=caps
    )
    h.add([prospect(f"p{i}@x.example") for i in range(35)], SAT)
    with pytest.raises(KeyboardInterrupt):
        h.tick(now, batch=100)
    statuses = [t.status for t in _touches(h)]
    assert (statuses.count("sent"), statuses.count("sending"), statuses.count("queued")) == (
        20,
        10,
        5,
    )

    assert _mailbox_slots(db) == 35  # the claim reserved a slot for every message

    survivor = FakeEmailSender()
    h2 = Harness(db, h.cadence, email=survivor, record_every=10, lease=timedelta(0), caps=caps)
    recovered = h2.ticker.recover()
    # The queued five never went: their slots came back; the unknown ten may have gone.
    assert _mailbox_slots(db) == 30
    report = h2.tick(now, batch=100)
    assert _mailbox_slots(db) == 35
    assert recovered.unknown == 10  # the sub-batch that was with the provider
    assert report.sent == 5  # the queued ones never went out: sent now, once
    assert {m.to_addr for m in survivor.sent}.isdisjoint({m.to_addr for m in dying.sent})
    statuses = [t.status for t in _touches(h)]
    assert (statuses.count("sent"), statuses.count("unknown"), len(statuses)) == (25, 10, 35)


class _ReplyingMidBatch(FakeEmailSender):
    """While the first sub-batch is with the provider, two queued prospects answer."""

    def __init__(self, harness_of: list[Harness], at: datetime) -> None:
        super().__init__()
        self.harness_of = harness_of
        self.at = at
        self.answered: dict[str, str] = {}

    def send_batch(self, messages):
        if not self.answered:
            h = self.harness_of[0]
            with h.engine.connect() as conn:
                queued = conn.execute(
                    select(prospects.c.email)
                    .join(enrollments, enrollments.c.prospect_id == prospects.c.id)
                    .join(touches, touches.c.enrollment_id == enrollments.c.id)
                    .where(touches.c.status == "queued")
                    .order_by(touches.c.key)
                ).scalars().all()  # fmt: skip
            self.answered = {queued[0]: "reply", queued[-1]: "unsubscribe"}
            for email, kind in self.answered.items():
                h.exit_event(email, kind, self.at)
        return super().send_batch(messages)


def test_a_queued_message_whose_prospect_replied_meanwhile_is_withdrawn_not_sent(db, tmp_path):
    now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    caps = CapPolicy(MailboxCaps(hourly=None, daily=1000), {}, None)
    holder: list[Harness] = []
    sender = _ReplyingMidBatch(holder, now)
    h = Harness(db, make_cadence(tmp_path), email=sender, record_every=10, caps=caps)
    holder.append(h)
    h.add([prospect(f"p{i}@x.example") for i in range(35)], SAT)
    report = h.tick(now, batch=100)
    assert len(sender.answered) == 2
    assert (report.sent, report.withdrawn) == (33, 2)
    sent_to = {m.to_addr for m in sender.sent}
    assert len(sent_to) == 33 and sent_to.isdisjoint(sender.answered)
    ended = (("finished", "replied"), ("opted_out", "unsubscribed"))
    for email, (state, reason) in zip(sender.answered, ended, strict=True):
        enrollment = h.enrollment(email)
        assert (enrollment.state, enrollment.reason, enrollment.claimed_at) == (state, reason, None)
        assert _touches(h, enrollment_id=enrollment.id) == []  # never went: no ledger row
    assert {t.status for t in _touches(h)} == {"sent"}
    assert _mailbox_slots(db) == 33  # the withdrawn messages' slots came back
