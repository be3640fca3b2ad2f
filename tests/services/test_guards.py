"""Claim-time guards: suppressions, contact hours, SMS consent, send caps, pauses, bounce shield."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.support.harness import SENDER, TEMPLATES, Harness, make_cadence, prospect
from touchflow.adapters.fakes import FakeEmailSender
from touchflow.domain.compliance import BounceShield, CapPolicy, MailboxCaps
from touchflow.errors import RateLimited
from touchflow.ports import SendResult
from touchflow.store import guards
from touchflow.store.enrollments import enroll
from touchflow.store.prospects import upsert_prospects
from touchflow.store.schema import enrollments, prospects, touches
from touchflow.store.suppressions import add_suppression

MON_10_NY = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Monday 10:00 New York

EMAIL_ONLY = """\
id: mail-only
name: Mail only
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
  holidays: none
steps:
  - id: intro
    channel: email
    subject: "Hi {{ prospect.first_name }}"
    template: email/intro.txt.j2
  - id: bump
    after: 1 day
    channel: email
    thread: intro
    template: email/bump.txt.j2
"""

SMS_FIRST = """\
id: sms-first
name: SMS first
requires: [{requires}]
schedule:
  timezone: prospect
  window: {{days: [mon, tue, wed, thu, fri, sat, sun], start: "06:00", end: "22:30"}}
  holidays: none
steps:
  - id: nudge
    channel: sms
    template: sms/nudge.txt.j2
  - id: intro
    after: 1 hour
    channel: email
    subject: "Hi {{{{ prospect.first_name }}}}"
    template: email/intro.txt.j2
"""


def _sms_cadence(tmp_path, requires: str = ""):
    return make_cadence(tmp_path, SMS_FIRST.format(requires=requires), TEMPLATES)


def _rows(h, table, **where):
    q = select(table).order_by(table.c.id)
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    with h.engine.connect() as conn:
        return list(conn.execute(q))


def _suppress(h, kind, value, now=MON_10_NY):
    with h.engine.begin() as conn:
        add_suppression(conn, kind, value, reason="test", source="test", now=now)


# -- suppressions --------------------------------------------------------------


@pytest.mark.parametrize("kind,value", [("email", "a@acme.example"), ("domain", "acme.example")])
def test_suppression_after_enrollment_is_honoured_at_the_next_claim(db, tmp_path, kind, value):
    h = Harness(db, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES))
    h.add(
        [prospect("a@acme.example", domain="acme.example"), prospect("b@other.example")], MON_10_NY
    )
    _suppress(h, kind, value)
    report = h.tick(MON_10_NY)
    assert [m.to_addr for m in h.email.sent] == ["b@other.example"]
    assert report.suppressed == 1
    e = h.enrollment("a@acme.example")
    assert (e.state, e.reason, e.next_due_at) == ("opted_out", f"suppressed:{kind}", None)


def test_a_domain_blocked_under_an_alias_is_honoured(db, tmp_path):
    """Import stores the primary domain (acme.example for ana@acme-mail.example); an
    operator blocking the alias the addresses use still stops them, at claim and at enrollment."""
    h = Harness(db, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES))
    h.add([prospect("ana@acme-mail.example", domain="acme.example")], MON_10_NY)
    _suppress(h, "domain", "acme-mail.example")
    assert h.tick(MON_10_NY).suppressed == 1 and h.email.sent == []
    assert h.enrollment("ana@acme-mail.example").reason == "suppressed:domain"
    with h.engine.begin() as conn:
        upsert_prospects(conn, [prospect("bo@acme-mail.example", domain="acme.example")], MON_10_NY)
        pid = conn.execute(
            select(prospects.c.id).where(prospects.c.email == "bo@acme-mail.example")
        ).scalar_one()
        result = enroll(conn, h.runtime, [pid], owner_email="sdr@x.example", sender=SENDER,
                        now=MON_10_NY)  # fmt: skip
    assert (result.enrolled, result.suppressed) == (0, 1)


def test_stopped_number_skips_sms_steps_and_the_cadence_goes_on(db, tmp_path):
    h = Harness(db, _sms_cadence(tmp_path))
    h.add([prospect("a@x.example", phone="(212) 555-0123"), prospect("b@x.example")], MON_10_NY)
    _suppress(h, "phone", "+12125550123")  # a@ (national format) and b@ share the number
    report = h.tick(MON_10_NY)
    assert h.sms.sent == [] and report.skipped_sms == 2
    skipped = _rows(h, touches, step_id="nudge")
    assert {(t.status, t.error) for t in skipped} == {("skipped", "sms_opted_out")}
    e = h.enrollment("a@x.example")
    assert (e.state, e.step_index) == ("active", 1)
    h.tick(e.next_due_at)
    assert sorted(m.to_addr for m in h.email.sent) == ["a@x.example", "b@x.example"]


def test_cadence_requiring_consent_texts_only_prospects_who_gave_it(db, tmp_path):
    h = Harness(db, _sms_cadence(tmp_path, "sms_consent"))
    h.add(
        [
            prospect("yes@x.example", fields={"sms_consent": "yes"}),
            prospect("no@x.example", phone="+12125550124"),
        ],
        MON_10_NY,
    )
    h.tick(MON_10_NY)
    assert [m.to_number for m in h.sms.sent] == ["+12125550123"]
    (skipped,) = _rows(h, touches, status="skipped")
    assert skipped.error == "no_sms_consent"


def test_texts_wait_for_0800_recipient_time(db, tmp_path):
    h = Harness(db, _sms_cadence(tmp_path))
    # 07:00 in Los Angeles: inside the cadence window (06:00-22:30), outside contact hours.
    at = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    h.add([prospect("la@x.example", tz="America/Los_Angeles", phone="+13105550123")], at)
    report = h.tick(at)
    assert h.sms.sent == [] and report.quiet_hours == 1
    e = h.enrollment("la@x.example")
    assert e.reason == "quiet_hours"
    assert e.next_due_at == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 08:00 Los Angeles
    h.tick(e.next_due_at)
    assert len(h.sms.sent) == 1


def test_quiet_hours_end_at_2100(db, tmp_path):
    h = Harness(db, _sms_cadence(tmp_path))
    at = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)  # Mon 21:30 New York, window open until 22:30
    h.add([prospect("ny@x.example")], at)
    h.tick(at)
    assert h.sms.sent == []
    assert h.enrollment("ny@x.example").next_due_at == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


# -- send caps -----------------------------------------------------------------


def _capped(db, tmp_path, policy):
    h = Harness(db, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES), caps=policy)
    return h


def test_mailbox_stagger_spreads_a_backlog_over_buckets(db, tmp_path):
    h = _capped(db, tmp_path, CapPolicy(MailboxCaps(hourly=24, daily=None), {}, None))
    h.add([prospect(f"p{i}@x{i}.example") for i in range(10)], MON_10_NY)
    report = h.tick(MON_10_NY)
    assert (report.sent, report.capped) == (2, 8)  # 24/hour -> 2 per 5 minutes
    waiting = [e for e in _rows(h, enrollments) if e.reason == "cap:stagger"]
    assert len(waiting) == 8
    assert {e.next_due_at for e in waiting} == {MON_10_NY + timedelta(minutes=5)}
    for i in range(1, 5):
        h.tick(MON_10_NY + timedelta(minutes=5 * i))
    assert len(h.email.sent) == 10


def test_mailbox_hourly_and_daily_caps_are_rolling(db, tmp_path):
    h = _capped(db, tmp_path, CapPolicy(MailboxCaps(hourly=120, daily=3), {}, None))
    h.add([prospect(f"p{i}@x{i}.example") for i in range(5)], MON_10_NY)
    h.tick(MON_10_NY)
    assert len(h.email.sent) == 3
    assert {e.reason for e in _rows(h, enrollments) if e.step_index == 0} == {"cap:mailbox_daily"}
    h.tick(MON_10_NY + timedelta(hours=23))  # the day's sends still count
    assert len(h.email.sent) == 3
    h.tick(MON_10_NY + timedelta(hours=24, minutes=5))  # they dropped out of the window
    assert len(h.email.sent) == 5 + 1  # the last two intros, then p0's bump came due


def test_per_mailbox_override_and_recipient_domain_cap(db, tmp_path):
    policy = CapPolicy(
        MailboxCaps(None, None),
        {"sam@touchflow.example": MailboxCaps(hourly=None, daily=100)},
        domain_daily=2,
    )
    h = _capped(db, tmp_path, policy)
    h.add([prospect(f"p{i}@bigco.example") for i in range(4)], MON_10_NY)
    report = h.tick(MON_10_NY)
    assert (report.sent, report.capped) == (2, 2)
    assert {e.reason for e in _rows(h, enrollments) if e.step_index == 0} == {"cap:domain_daily"}


# -- pauses and the bounce shield ----------------------------------------------


def test_paused_enrollment_resumes_when_its_pause_ends(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES))
    h.add([prospect("ooo@x.example")], MON_10_NY)
    back = MON_10_NY + timedelta(days=3)
    with h.engine.begin() as conn:
        conn.execute(
            update(enrollments).values(state="paused", reason="out_of_office", next_due_at=back)
        )
    assert h.tick(MON_10_NY).claimed == 0
    h.tick(back)
    e = h.enrollment("ooo@x.example")
    assert (e.state, e.reason, e.step_index) == ("active", None, 1)
    assert len(h.email.sent) == 1


class _Bouncing(FakeEmailSender):
    """Rejects every address starting with "bad"."""

    def send_batch(self, messages):
        from touchflow.errors import RecipientRejected

        out = []
        for m in messages:
            if m.to_addr.startswith("bad"):
                err = RecipientRejected("550 no such user", connector="fake", operation="send")
                out.append(SendResult(m.touch_key, error=err))
            else:
                out.extend(super().send_batch([m]))
        return out


def test_bounce_shield_pauses_a_cadence_and_resume_starts_a_fresh_sample(db, tmp_path):
    h = Harness(
        db,
        make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES),
        email=_Bouncing(),
        bounce_shield=BounceShield(threshold=0.05, min_sends=20),
    )
    people = [prospect(f"ok{i}@x.example") for i in range(17)]
    people += [prospect(f"bad{i}@x.example") for i in range(3)]
    h.add(people, MON_10_NY)
    h.tick(MON_10_NY)  # 20 sends, 3 bounces: 15 %
    assert h.ticker.check_bounce_shield(MON_10_NY) == ["mail-only"]
    with h.engine.connect() as conn:
        (pause,) = guards.list_pauses(conn)
    assert "3 bounces in 20 sends" in pause.reason
    later = MON_10_NY + timedelta(days=1, minutes=1)
    assert h.tick(later).claimed == 0  # the bumps wait while the cadence is paused
    with h.engine.begin() as conn:
        assert guards.resume_cadence(conn, "mail-only", later)
    assert h.tick(later).sent == 17
    assert h.ticker.check_bounce_shield(later) == []


def test_rate_limited_send_waits_at_least_retry_after(db, tmp_path):
    class _Limited(FakeEmailSender):
        def send_batch(self, messages):
            err = RateLimited("slow down", retry_after=7200, connector="fake", operation="send")
            return [SendResult(m.touch_key, error=err) for m in messages]

    h = Harness(db, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES), email=_Limited())
    h.add([prospect("a@x.example")], MON_10_NY)
    h.tick(MON_10_NY)
    e = h.enrollment("a@x.example")
    assert e.reason == "retrying:fake.send: slow down"
    assert e.next_due_at == MON_10_NY + timedelta(hours=2)


def test_wrong_number_call_outcome_stops_texts_to_that_number(db, tmp_path):
    h = Harness(db, make_cadence(tmp_path))  # intro, call-1, bump, nudge (sms), breakup
    h.add([prospect("a@x.example", phone="212-555-0123")], MON_10_NY)
    h.tick(MON_10_NY)
    h.tick(h.enrollment("a@x.example").next_due_at)  # the call task
    h.complete_due_tasks(MON_10_NY + timedelta(days=3), outcome="wrong_number")
    h.run_until(MON_10_NY + timedelta(days=20))
    assert h.sms.sent == []
    (nudge,) = _rows(h, touches, step_id="nudge")
    assert (nudge.status, nudge.error) == ("skipped", "sms_opted_out")
    assert h.enrollment("a@x.example").reason == "completed"


def test_cadence_audience_is_enforced_at_enrollment(db, tmp_path):
    yaml_text = EMAIL_ONLY.replace("steps:", "audience: {min_score: 50, grades: [A, B]}\nsteps:", 1)
    h = Harness(db, make_cadence(tmp_path, yaml_text, TEMPLATES))
    people = {
        "a@x.example": (80, "A", "mql"),
        "b@x.example": (55, "C", "lead"),  # grade outside
        "c@x.example": (40, "B", "lead"),  # score too low
        "d@x.example": (90, "A", "disqualified"),  # never
        "e@x.example": (None, None, None),  # not scored yet
    }
    with h.engine.begin() as conn:
        upsert_prospects(conn, [prospect(e) for e in people], MON_10_NY)
        for email, (score, grade, lifecycle) in people.items():
            conn.execute(
                update(prospects)
                .where(prospects.c.email == email)
                .values(score=score, grade=grade, lifecycle=lifecycle)
            )
        res = enroll(conn, h.runtime, None, owner_email="o@x", sender=SENDER, now=MON_10_NY)
    assert (res.enrolled, res.outside_audience) == (1, 4)
    assert [e.prospect_id for e in _rows(h, enrollments)] == [1]
