"""Speed to lead, window first, against the straightforward scan (``source="ledger"``).

The leads are chosen for the edges of the window-first queries: a lead whose
first assignment is before the window and whose reroute is in it (not a lead
of the window), an AE who is not the first assignee, a touch before the lead
came in, a failed touch, a task completion, no SLA deadline.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from touchflow.domain.compliance import CapPolicy
from touchflow.services.reporting import ReportContext, ReportQuery, run_report
from touchflow.store.schema import (
    cadence_versions,
    enrollments,
    events,
    prospects,
    route_assignments,
    touches,
)

AE1, AE2, AE3 = "ae1@yourco.example", "ae2@yourco.example", "ae3@yourco.example"
NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
DEC = ReportQuery(since=date(2026, 12, 1), until=date(2026, 12, 10))


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def leads(db: Engine) -> Engine:
    touch_no = iter(range(1, 100))
    with db.begin() as conn:
        conn.execute(insert(cadence_versions), [
            {"version": f"v-{c}", "cadence_id": c, "yaml_text": "", "source_path": "",
             "templates": {}, "created_at": at(1, 0, month=1)}
            for c in (AE1, AE2, AE3)
        ])  # fmt: skip

        def prospect(pid: int, fields: dict[str, Any], sources: Any = None) -> None:
            conn.execute(insert(prospects).values(
                id=pid, email=f"p{pid}@acme.example", fields=fields, field_sources=sources,
                created_at=at(1, 0, month=1), updated_at=at(1, 0, month=1)))  # fmt: skip

        def assign(pid: int, ae: str, when: datetime, due: datetime | None, status: str) -> None:
            conn.execute(insert(route_assignments).values(
                prospect_id=pid, assignee_email=ae, rule="r", reason="test", status=status,
                assigned_at=when, sla_due_at=due))  # fmt: skip

        def enroll(pid: int, owner: str) -> int:
            key: Any = conn.execute(insert(enrollments).values(
                prospect_id=pid, cadence_id=owner, cadence_version=f"v-{owner}",
                state="active", step_index=0, attempt=1, owner_email=owner, sender_email=owner,
                enrolled_at=at(1, 0, month=1), updated_at=at(1, 0, month=1))
            ).inserted_primary_key  # fmt: skip
            return int(key[0])

        def touch(eid: int, channel: str, when: datetime, status: str = "sent") -> None:
            n = next(touch_no)
            conn.execute(insert(touches).values(
                key=f"{eid}-s{n}-1", enrollment_id=eid, step_id=f"s{n}", channel=channel,
                status=status, due_at=when, executed_at=when, claimed_at=when))  # fmt: skip

        def task_done(pid: int, eid: int, when: datetime) -> None:
            conn.execute(insert(events).values(
                prospect_id=pid, enrollment_id=eid, type="completed", occurred_at=when,
                source="task", payload={}, created_at=when))  # fmt: skip

        # 1: web lead, AE1 emails 30 minutes after it came in.
        prospect(1, {"lead_source": "web"})
        assign(1, AE1, at(1, 10), at(1, 11), "accepted")
        touch(enroll(1, AE1), "email", at(1, 10, 30))
        # 2: imported; rerouted from AE1 (who emailed) to AE2, whose call task is done late.
        prospect(2, {}, {"email": {"source": "import:list.csv"}})
        assign(2, AE1, at(2, 9), at(2, 10), "rerouted")
        assign(2, AE2, at(2, 10), at(2, 11), "assigned")
        touch(enroll(2, AE1), "email", at(2, 9, 10))
        e2 = enroll(2, AE2)
        touch(e2, "call", at(2, 11, 30))  # a call is counted by its completed task
        task_done(2, e2, at(2, 12))
        # 3: never touched, deadline passed: a miss.
        prospect(3, {"source": "web"})
        assign(3, AE2, at(3, 8), at(3, 9), "assigned")
        # 4: received in November.
        prospect(4, {"lead_source": "web"})
        assign(4, AE1, at(20, 8, month=11), at(20, 9, month=11), "accepted")
        touch(enroll(4, AE1), "sms", at(20, 8, 5, month=11))
        # 5: received 30 November, rerouted to AE3 on 1 December: November's lead.
        prospect(5, {"lead_source": "event"})
        assign(5, AE1, at(30, 23, month=11), at(1, 0), "rerouted")
        assign(5, AE3, at(1, 9), at(1, 10), "assigned")
        touch(enroll(5, AE3), "email", at(1, 9, 20))
        # 6: texted before the lead came in; a failed email after it.
        prospect(6, {"lead_source": "web"})
        assign(6, AE1, at(4, 8), at(4, 9), "assigned")
        e6 = enroll(6, AE1)
        touch(e6, "sms", at(4, 7))
        touch(e6, "email", at(4, 8, 30), status="failed")
        # 7: no SLA deadline, not touched: no miss.
        prospect(7, {})
        assign(7, AE1, at(5, 8), None, "assigned")
    return db


def _rows(engine: Engine, q: ReportQuery, source: str) -> list[dict[str, Any]]:
    ctx = ReportContext(now=NOW, caps=CapPolicy(), source=source)
    return run_report(engine, "speed_to_lead", q, ctx, fresh=False).rows


QUERIES = [
    ReportQuery(),
    DEC,
    ReportQuery(since=date(2026, 11, 30)),
    ReportQuery(until=date(2026, 11, 30)),
    ReportQuery(since=date(2026, 12, 2), until=date(2026, 12, 2)),
    ReportQuery(owner=AE1),
    ReportQuery(owner=AE3, since=date(2026, 11, 1)),
    ReportQuery(owners=frozenset({AE2, AE3})),
    ReportQuery(owners=frozenset({AE2}), owner=AE1),
    ReportQuery(owners=frozenset()),
]


@pytest.mark.parametrize("q", QUERIES, ids=range(len(QUERIES)))
def test_window_first_is_the_scan(leads: Engine, q: ReportQuery) -> None:
    assert _rows(leads, q, "rollups") == _rows(leads, q, "ledger")


def test_the_figures_of_a_window(leads: Engine) -> None:
    rows = {(r["source"], r["ae"]): r for r in _rows(leads, DEC, "rollups")}
    assert set(rows) == {("web", AE1), ("import", AE2), ("web", AE2), ("unknown", AE1)}
    web1 = rows[("web", AE1)]  # leads 1 and 6 (6 texted before it came in: not counted)
    assert (web1["leads"], web1["touched"], web1["sla_misses"], web1["rerouted"]) == (2, 1, 0, 0)
    assert web1["median_minutes"] == pytest.approx(30.0)
    imp = rows[("import", AE2)]  # lead 2: received 09:00, AE2's task done at 12:00
    assert (imp["leads"], imp["touched"], imp["sla_misses"], imp["rerouted"]) == (1, 1, 1, 1)
    assert imp["median_minutes"] == pytest.approx(180.0)
    web2 = rows[("web", AE2)]  # lead 3: never touched, past its deadline
    assert (web2["leads"], web2["touched"], web2["sla_misses"]) == (1, 0, 1)
    assert web2["median_minutes"] is None
    unknown = rows[("unknown", AE1)]  # lead 7: no deadline
    assert (unknown["leads"], unknown["touched"], unknown["sla_misses"]) == (1, 0, 0)


def test_a_lead_belongs_to_its_first_assignment_and_its_latest_ae(leads: Engine) -> None:
    november = _rows(leads, ReportQuery(since=date(2026, 11, 30), until=date(2026, 11, 30)),
                     "rollups")  # fmt: skip
    assert [(r["source"], r["ae"], r["leads"], r["rerouted"]) for r in november] == [
        ("event", AE3, 1, 1)
    ]
    assert november[0]["median_minutes"] == pytest.approx(9 * 60 + 20 + 60)
    assert _rows(leads, ReportQuery(owner=AE1, since=date(2026, 11, 30)), "rollups") == [
        r for r in _rows(leads, ReportQuery(since=date(2026, 12, 1)), "rollups") if r["ae"] == AE1
    ]
    assert _rows(leads, ReportQuery(owners=frozenset()), "rollups") == []
