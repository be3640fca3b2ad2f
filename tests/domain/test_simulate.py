"""The dry run applies the tick's claim-time rules for texts: consent and contact hours."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.support.harness import SENDER, make_cadence, prospect
from touchflow.domain.simulate import SimEvent, simulate

MON_0530_NY = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)

TEXT_FIRST = """\
id: text-first
name: Text first
requires: [sms_consent]
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "06:00", end: "22:30"}
  holidays: none
steps:
  - id: call-1
    channel: call
  - id: nudge
    channel: sms
    template: sms/nudge.txt.j2
  - id: intro
    after: 1 hour
    channel: email
    subject: "Hi {{ prospect.first_name }}"
    template: email/intro.txt.j2
"""


def _steps(records: list[dict], email: str) -> dict[str, dict]:
    return {r["step"]: r for r in records if r.get("prospect") == email and "step" in r}


def test_texts_need_consent_and_wait_for_contact_hours(tmp_path: Path) -> None:
    cadence = make_cadence(tmp_path, TEXT_FIRST)
    yes = prospect("yes@x.example", fields={"sms_consent": "yes"})
    no = prospect("no@x.example")
    records = simulate(cadence, [yes, no], start=MON_0530_NY, days=2, sender=SENDER)
    # 06:00 New York is inside the window but not inside contact hours (08:00-21:00).
    text = _steps(records, "yes@x.example")["nudge"]
    assert (text["status"], text["local_at"][11:16]) == ("sent", "08:00")
    skipped = _steps(records, "no@x.example")["nudge"]
    assert (skipped["status"], skipped["reason"]) == ("skipped", "no_sms_consent")


def test_a_wrong_number_stops_the_texts(tmp_path: Path) -> None:
    """`wrong_number` suppresses the number, as `touchflow task done` does: no text follows."""
    cadence = make_cadence(tmp_path, TEXT_FIRST)
    who = prospect("wrong@x.example", fields={"sms_consent": "yes"})
    events = [SimEvent(MON_0530_NY, who.email, "wrong_number", step="call-1")]
    records = simulate(cadence, [who], start=MON_0530_NY, days=2, sender=SENDER, events=events)
    steps = _steps(records, who.email)
    assert steps["call-1"]["outcome"] == "wrong_number"
    assert (steps["nudge"]["status"], steps["nudge"]["reason"]) == ("skipped", "sms_opted_out")
    assert steps["intro"]["status"] == "sent"
