"""Cadences branch on what happened: task outcomes in `when`, and channels a prospect
cannot take (no phone, a landline for a text) skipped rather than held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support.harness import SENDER, Harness, make_cadence, prospect
from touchflow.domain.cadence import load_cadence
from touchflow.domain.simulate import SimEvent, simulate
from touchflow.store.schema import tasks, touches
from touchflow.store.tasks import complete_tasks

ROOT = Path(__file__).resolve().parents[2]
MON = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 New York


@pytest.fixture
def h(db) -> Harness:
    """The bundled enterprise-outbound cadence, as a team runs it."""
    cadence = load_cadence(ROOT / "cadences" / "enterprise-outbound.yaml", ROOT / "templates")
    return Harness(db, cadence)


def _ledger(h: Harness, email: str) -> dict[str, tuple[str, str | None]]:
    enrollment_id = h.enrollment(email).id
    with h.engine.connect() as conn:
        rows = conn.execute(
            select(touches.c.step_id, touches.c.status, touches.c.error).where(
                touches.c.enrollment_id == enrollment_id
            )
        )
        return {r.step_id: (r.status, r.error) for r in rows}


def _run(h: Harness, end: datetime, outcomes: dict[str, str]) -> None:
    """Tick at every due time; each prospect's tasks are done with its outcome when due."""
    while (due := h.next_due()) is not None and due <= end:
        h.tick(due)
        for email, outcome in outcomes.items():
            enrollment_id = h.enrollment(email).id
            with h.engine.begin() as conn:
                mine = list(
                    conn.execute(
                        select(tasks.c.id).where(
                            tasks.c.status == "open", tasks.c.enrollment_id == enrollment_id
                        )
                    ).scalars()
                )
                complete_tasks(conn, h.runtimes, SENDER, mine, outcome=outcome, at=due)


def test_bundled_cadence_texts_only_when_the_call_did_not_connect(h: Harness) -> None:
    """`enterprise-outbound` texts after a no-answer or a voicemail, not after a conversation.

    Before, its `not touched('call-1', 'completed')` was false for every logged call
    (no answer and voicemail count as completed), so nobody was ever texted.
    """
    people = ["noanswer@x.example", "voicemail@x.example", "connected@x.example"]
    h.add([prospect(e, phone=f"+1212555012{i}") for i, e in enumerate(people)], MON)
    _run(h, MON + timedelta(days=30), {e: e.split("@")[0].replace("noanswer", "no_answer")
                                        for e in people})  # fmt: skip
    assert _ledger(h, "noanswer@x.example")["sms-nudge"] == ("sent", None)
    assert _ledger(h, "voicemail@x.example")["sms-nudge"] == ("sent", None)
    assert _ledger(h, "connected@x.example")["sms-nudge"] == ("skipped", "when_false")
    for email in people:  # the breakup follows either way
        assert _ledger(h, email)["breakup"][0] == "sent"
        assert (h.enrollment(email).state, h.enrollment(email).reason) == ("finished", "completed")
    texted = sorted(m.to_number for m in h.sms.sent)
    assert texted == ["+12125550120", "+12125550121"]


def test_no_phone_skips_the_call_and_the_text_and_the_cadence_goes_on(db, tmp_path: Path) -> None:
    """Before, the text step held the enrollment `pending: missing_data:prospect.phone` for
    good (the breakup never went) and a call task was made with no number to call."""
    h = Harness(db, make_cadence(tmp_path))  # intro, call-1, bump, nudge (sms), breakup
    h.add([prospect("nophone@x.example", phone=None)], MON)
    h.run_until(MON + timedelta(days=30))
    ledger = _ledger(h, "nophone@x.example")
    assert ledger["call-1"] == ("skipped", "no_phone")
    assert ledger["nudge"] == ("skipped", "no_phone")
    assert ledger["breakup"] == ("sent", None)
    e = h.enrollment("nophone@x.example")
    assert (e.state, e.reason) == ("finished", "completed")
    with h.engine.connect() as conn:
        assert conn.execute(select(tasks.c.id)).all() == []  # no call task without a number
    assert h.sms.sent == []


def test_a_landline_takes_the_call_but_not_the_text(h: Harness) -> None:
    h.add([prospect("berlin@x.example", "Europe/Berlin", "DE", phone="+493012345678")], MON)
    report_no_phone = 0
    end = MON + timedelta(days=30)
    while (due := h.next_due()) is not None and due <= end:
        report_no_phone += h.tick(due).no_phone
        h.complete_due_tasks(due, outcome="no_answer")
    ledger = _ledger(h, "berlin@x.example")
    assert ledger["call-1"] == ("sent", None)  # the call task was made
    assert ledger["sms-nudge"] == ("skipped", "no_phone")
    assert report_no_phone == 1  # `touchflow run` shows it


def test_simulate_takes_task_outcomes_and_matches_the_tick(h: Harness) -> None:
    """An outcome in the events file completes the task due at that time, as the SDR would."""
    people = [prospect("noanswer@x.example"), prospect("connected@x.example")]
    cadence = h.cadence
    plain = simulate(cadence, people, start=MON, days=30, sender=SENDER)
    call_due = {r["prospect"]: r["at"] for r in plain if r.get("step") == "call-1"}
    events = [
        SimEvent(datetime.fromisoformat(call_due["noanswer@x.example"]), "noanswer@x.example",
                 "no_answer"),
        SimEvent(MON, "connected@x.example", "connected", step="call-1"),
    ]  # fmt: skip
    sim = simulate(cadence, people, start=MON, days=30, sender=SENDER, events=events)
    steps = {(r["prospect"], r["step"]): r for r in sim if "step" in r}
    assert steps[("noanswer@x.example", "call-1")]["outcome"] == "no_answer"
    assert steps[("noanswer@x.example", "sms-nudge")]["status"] == "sent"
    assert steps[("connected@x.example", "call-1")]["outcome"] == "connected"
    nudge = steps[("connected@x.example", "sms-nudge")]
    assert (nudge["status"], nudge["reason"]) == ("skipped", "when_false")
    assert not [r for r in sim if r.get("status") == "ignored"]

    h.add(people, MON)
    _run(h, MON + timedelta(days=30), {"noanswer@x.example": "no_answer",
                                       "connected@x.example": "connected"})  # fmt: skip
    for p in people:
        ledger = _ledger(h, p.email)
        simulated = {s: r["status"] for (e, s), r in steps.items() if e == p.email}
        assert {s: ("task" if s in ("call-1", "linkedin-connect") else st)
                for s, (st, _) in ledger.items()} == simulated  # fmt: skip


def test_simulated_task_waits_for_a_later_outcome(h: Harness) -> None:
    """A no-answer logged two days after the call was due: the next step counts from then."""
    person = prospect("late@x.example")
    plain = simulate(h.cadence, [person], start=MON, days=30, sender=SENDER)
    due = {r["step"]: r["at"] for r in plain if "step" in r}
    logged = datetime.fromisoformat(due["call-1"]) + timedelta(days=2)
    events = [SimEvent(logged, person.email, "no_answer")]
    sim = simulate(h.cadence, [person], start=MON, days=30, sender=SENDER, events=events)
    by_step = {r["step"]: r for r in sim if "step" in r}
    assert by_step["call-1"]["done_at"] == logged.isoformat()
    assert by_step["linkedin-connect"]["at"] > logged.isoformat()
    assert by_step["linkedin-connect"]["at"] > due["linkedin-connect"]


def test_simulate_reports_an_outcome_with_no_task_open(h: Harness) -> None:
    person = prospect("early@x.example")
    events = [SimEvent(MON - timedelta(hours=1), person.email, "no_answer")]
    sim = simulate(h.cadence, [person], start=MON, days=30, sender=SENDER, events=events)
    ignored = [r for r in sim if r.get("status") == "ignored"]
    assert ignored == [
        {
            "prospect": person.email,
            "at": (MON - timedelta(hours=1)).isoformat(),
            "event": "no_answer",
            "status": "ignored",
            "reason": "no_open_task",
        }
    ]


def test_simulate_refuses_an_outcome_for_a_step_that_is_not_a_task(h: Harness) -> None:
    events = [SimEvent(MON, "a@x.example", "connected", step="intro", line=3)]
    with pytest.raises(ValueError, match="line 3: 'connected' is a task outcome, but 'intro'"):
        simulate(h.cadence, [prospect("a@x.example")], start=MON, days=3, sender=SENDER,
                 events=events)  # fmt: skip
    events = [SimEvent(MON, "a@x.example", "connected", step="call-9", line=4)]
    with pytest.raises(ValueError, match="line 4: no step 'call-9'"):
        simulate(h.cadence, [prospect("a@x.example")], start=MON, days=3, sender=SENDER,
                 events=events)  # fmt: skip
