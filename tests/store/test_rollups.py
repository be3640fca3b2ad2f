"""Rollups equal a straightforward GROUP BY over the ledger, however the history arrives."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, update

from touchflow.domain.compliance import CapPolicy
from touchflow.services.reporting import ReportContext, ReportQuery, deliverability, funnel
from touchflow.store import rollups
from touchflow.store.schema import (
    cadence_versions,
    deal_stage_changes,
    deals,
    enrollments,
    events,
    prospects,
    rollup_cadence,
    rollup_counts,
    rollup_delivery,
    rollup_funnel,
    rollup_mailbox,
    rollup_marks,
    rollup_pending,
    rollup_seen,
    score_history,
    tasks,
    touches,
)

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DIMS = ["day", *rollups.DIMENSIONS]
EVENT_TYPES = [*rollups.EVENT_METRICS, "processed", "deferred", "out_of_office"]


def _seed(conn: Any) -> None:
    for cid in ("alpha", "beta"):
        conn.execute(
            insert(cadence_versions).values(
                version=f"v-{cid}", cadence_id=cid, yaml_text="", source_path="", templates={},
                created_at=T0,
            )
        )  # fmt: skip


class History:
    """Random prospects, enrollments, touches, events, tasks and scores, written in steps."""

    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine, self.rng = engine, random.Random(seed)
        self.prospects: list[int] = []
        self.enrollments: list[int] = []
        self.touches: list[tuple[int, str]] = []  # id, key
        self.sending: list[int] = []
        self.deals: list[str] = []  # open deal ids
        self.n = 0

    def step(self) -> None:
        rng = self.rng
        with self.engine.begin() as conn:
            for _ in range(rng.randint(1, 8)):
                self.n += 1
                at = T0 + timedelta(hours=rng.randint(0, 24 * 10), minutes=rng.randint(0, 59))
                kind = rng.random()
                if kind < 0.15 or not self.enrollments:
                    dom = f"d{rng.randint(0, 3)}.example"
                    pid = conn.execute(
                        insert(prospects).values(
                            email=f"u{self.n}@{dom}", domain=dom, fields={},
                            created_at=at, updated_at=at,
                        ).returning(prospects.c.id)
                    ).scalar_one()  # fmt: skip
                    self.prospects.append(pid)
                    cid = rng.choice(["alpha", "beta"])
                    eid = conn.execute(
                        insert(enrollments).values(
                            prospect_id=pid, cadence_id=cid, cadence_version=f"v-{cid}",
                            state="active", step_index=0, attempt=1,
                            owner_email=rng.choice(["sam@x.example", "lena@x.example"]),
                            sender_email=rng.choice(["sam@x.example", "box@x.example"]),
                            enrolled_at=at - timedelta(hours=1), updated_at=at,
                        ).returning(enrollments.c.id)
                    ).scalar_one()  # fmt: skip
                    self.enrollments.append(eid)
                elif kind < 0.5:
                    eid = rng.choice(self.enrollments)
                    key = f"{eid}-s{self.n}-1"
                    status = rng.choice(["sent", "sent", "sent", "failed", "skipped", "sending",
                                         "unknown"])  # fmt: skip
                    tid = conn.execute(
                        insert(touches).values(
                            key=key, enrollment_id=eid, step_id=rng.choice(["intro", "bump"]),
                            channel=rng.choice(["email", "email", "sms", "call"]),
                            variant=rng.choice([None, "a", "b"]), status=status,
                            due_at=at, executed_at=at, claimed_at=at,
                        ).returning(touches.c.id)
                    ).scalar_one()  # fmt: skip
                    self.touches.append((tid, key))
                    if status in ("sending", "unknown"):
                        self.sending.append(tid)
                    if rng.random() < 0.3:
                        conn.execute(
                            insert(tasks).values(
                                touch_key=key, enrollment_id=eid, step_id="call-1", channel="call",
                                owner_email="sam@x.example", title="Call", status="open",
                                due_at=at, created_at=at,
                            )
                        )  # fmt: skip
                elif kind < 0.85 and self.touches:
                    tid, key = rng.choice(self.touches)
                    eid = conn.execute(
                        select(touches.c.enrollment_id).where(touches.c.id == tid)
                    ).scalar_one()
                    pid = conn.execute(
                        select(enrollments.c.prospect_id).where(enrollments.c.id == eid)
                    ).scalar_one()
                    how = rng.random()
                    is_task = rng.random() < 0.1
                    conn.execute(
                        insert(events).values(
                            prospect_id=pid,
                            enrollment_id=eid if how < 0.9 else None,
                            touch_key=key if how < 0.8 else None,
                            type=rng.choice(["completed", "skipped"]) if is_task
                            else rng.choice(EVENT_TYPES),
                            source="task" if is_task else "sendgrid",
                            payload={"outcome": rng.choice(["voicemail", "meeting_booked"])}
                            if is_task else {},
                            occurred_at=at, created_at=at,
                        )
                    )  # fmt: skip
                elif kind < 0.9 and self.sending:
                    tid = self.sending.pop(rng.randrange(len(self.sending)))
                    conn.execute(
                        update(touches).where(touches.c.id == tid)
                        .values(status=rng.choice(["sent", "failed", "unknown"]))
                    )  # fmt: skip
                elif kind < 0.94 and self.deals and rng.random() < 0.5:
                    deal_id = self.deals.pop(rng.randrange(len(self.deals)))  # won or lost
                    outcome = rng.choice(["won", "lost"])
                    conn.execute(
                        update(deals).where(deals.c.deal_id == deal_id)
                        .values(outcome=outcome, closed_at=at, stage=f"closed_{outcome}")
                    )  # fmt: skip
                    conn.execute(
                        insert(deal_stage_changes).values(
                            source="csv", deal_id=deal_id, stage=f"closed_{outcome}", entered_at=at
                        )
                    )
                elif kind < 0.94:
                    deal_id, dom = f"D{self.n}", f"d{rng.randint(0, 4)}.example"
                    conn.execute(
                        insert(deals).values(
                            source="csv", deal_id=deal_id, account_domain=dom,
                            amount=1000, currency="USD", stage="discovery",
                            forecast_category="pipeline", created_at=at, updated_at=at,
                        )
                    )  # fmt: skip
                    if rng.random() < 0.7:  # a deal's first change may come in a later step
                        conn.execute(
                            insert(deal_stage_changes).values(
                                source="csv", deal_id=deal_id, stage="discovery", entered_at=at
                            )
                        )
                    self.deals.append(deal_id)
                elif self.prospects:
                    conn.execute(
                        insert(score_history).values(
                            prospect_id=rng.choice(self.prospects), score=50, fit=1, engagement=1,
                            grade="B", lifecycle=rng.choice(["mql", "sql"]), reasons=[],
                            icp_version="x", scored_at=at,
                        )
                    )  # fmt: skip


def _snapshot(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return (
            sorted(conn.execute(select(rollup_counts)).all()),
            sorted(conn.execute(select(rollup_cadence)).all()),
            sorted(conn.execute(select(rollup_delivery)).all()),
            sorted(conn.execute(select(rollup_mailbox)).all()),
            sorted(conn.execute(select(rollup_funnel)).all()),
        )


def _assert_equal_to_ledger(engine: Engine) -> None:
    with engine.connect() as conn:
        assert rollups.rollup_totals(conn, DIMS) == rollups.ledger_counts(conn, DIMS)
        narrow = ["day", "cadence_id", "step_id", "variant"]  # read from rollup_cadence
        assert rollups.rollup_totals(conn, narrow) == rollups.ledger_counts(conn, narrow)
        delivery = rollups.ledger_delivery(conn)
        assert rollups.rollup_delivery_counts(conn) == delivery
        per_mailbox: dict[str, dict[str, int]] = {}
        for (mailbox, _), m in delivery.items():
            for metric, n in m.items():
                mine = per_mailbox.setdefault(mailbox, {})
                mine[metric] = mine.get(metric, 0) + n
        assert rollups.rollup_mailbox_counts(conn) == per_mailbox
        key = lambda r: r["enrollment_id"]  # noqa: E731
        fast = sorted(rollups.rollup_funnel_rows(conn), key=key)
        slow = sorted(rollups.ledger_funnel_rows(conn), key=key)
        assert fast == slow


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_rollups_equal_the_group_by(db: Engine, seed: int) -> None:
    with db.begin() as conn:
        _seed(conn)
    history = History(db, seed)
    rng = random.Random(seed * 7)
    for _ in range(40):
        history.step()
        if rng.random() < 0.4:
            rollups.refresh(db)
    rollups.refresh(db)
    _assert_equal_to_ledger(db)
    with db.connect() as conn:  # the deal stages are exercised, not vacuously equal
        assert conn.execute(
            select(func.count()).where(rollup_funnel.c.opportunity_at.is_not(None))
        ).scalar_one()
    before = _snapshot(db)
    report = rollups.refresh(db)
    assert sum(report.rows.values()) == 0 or all(
        src == "touches" for src, n in report.rows.items() if n
    )  # only still-unsettled touches are looked at again
    assert _snapshot(db) == before
    with db.connect() as conn:
        pending = conn.execute(select(func.count()).select_from(rollup_pending)).scalar_one()
        unsettled = conn.execute(
            select(func.count()).where(touches.c.status.in_(["sending", "unknown"]))
        ).scalar_one()
    assert pending == unsettled


def test_a_refresh_that_dies_midway_counts_nothing_twice(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.begin() as conn:
        _seed(conn)
    history = History(db, 9)
    for _ in range(30):
        history.step()
    rollups.refresh(db)
    for _ in range(30):
        history.step()
    real = rollups._write

    def crash(conn: Any, batch: Any) -> None:
        real(conn, batch)  # the counters are written, then the process dies
        raise RuntimeError("killed")

    monkeypatch.setattr(rollups, "_write", crash)
    with pytest.raises(RuntimeError):
        rollups.refresh(db)
    monkeypatch.setattr(rollups, "_write", real)
    rollups.refresh(db)
    _assert_equal_to_ledger(db)


def test_small_chunks_take_several_rounds(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollups, "CHUNK", 5)
    with db.begin() as conn:
        _seed(conn)
    history = History(db, 4)
    for _ in range(25):
        history.step()
    report = rollups.refresh(db)
    assert report.rounds > 2
    _assert_equal_to_ledger(db)


@pytest.mark.postgres
def test_a_row_committed_late_below_the_mark_is_counted(pg_migrated_url: str) -> None:
    """PostgreSQL hands out ids at INSERT, not at COMMIT: a gap is looked at again."""
    from touchflow.store.db import make_engine

    engine = make_engine(pg_migrated_url)
    try:
        with engine.begin() as conn:
            _seed(conn)
        History(engine, 5).step()
        history = History(engine, 6)
        history.enrollments = [1]
        history.touches = []
        slow = engine.connect()
        tx = slow.begin()
        slow.execute(
            insert(events).values(type="replied", source="x", occurred_at=T0, created_at=T0)
        )  # an id taken, not committed
        with engine.begin() as conn:
            conn.execute(
                insert(events).values(type="replied", source="x", occurred_at=T0, created_at=T0)
            )
        rollups.refresh(engine)
        with engine.connect() as conn:
            kinds = conn.execute(select(rollup_pending.c.kind)).scalars().all()
        assert "gap" in kinds
        tx.commit()
        slow.close()
        rollups.refresh(engine)
        _assert_equal_to_ledger(engine)
        with engine.connect() as conn:
            got = rollups.rollup_totals(conn, ["cadence_id"], metrics=["replied"])
        assert got[("",)]["replied"] == 2
    finally:
        engine.dispose()


def _empty_rollups(engine: Engine) -> None:
    with engine.begin() as conn:
        for t in (rollup_counts, rollup_cadence, rollup_delivery, rollup_mailbox, rollup_funnel,
                  rollup_seen, rollup_marks, rollup_pending):  # fmt: skip
            conn.execute(t.delete())


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2])
def test_the_set_based_backfill_equals_the_fold(
    pg_migrated_url: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first refresh over a large history (INSERT ... SELECT) fills what the fold would,
    and the fold carries on from its marks, gaps and unsettled touches."""
    from touchflow.store import rollup_backfill
    from touchflow.store.db import make_engine

    engine = make_engine(pg_migrated_url)
    try:
        with engine.begin() as conn:
            _seed(conn)
        history = History(engine, seed)
        for _ in range(30):
            history.step()
        with engine.connect() as conn:  # a burnt id: a gap below the mark
            conn.execute(
                insert(events).values(type="replied", source="x", occurred_at=T0, created_at=T0)
            )
            conn.rollback()
        history.step()
        monkeypatch.setattr(rollup_backfill, "BACKFILL_MIN_ROWS", 0)
        assert rollup_backfill.wanted(engine)
        rollups.refresh(engine)
        assert not rollup_backfill.wanted(engine)  # once: the marks are set
        _assert_equal_to_ledger(engine)
        with engine.connect() as conn:
            pending = sorted(conn.execute(select(rollup_pending.c.source, rollup_pending.c.kind)))
        filled = _snapshot(engine)
        monkeypatch.setattr(rollup_backfill, "BACKFILL_MIN_ROWS", 10**9)
        _empty_rollups(engine)
        rollups.refresh(engine)
        assert _snapshot(engine) == filled
        with engine.connect() as conn:
            assert (
                sorted(conn.execute(select(rollup_pending.c.source, rollup_pending.c.kind)))
                == pending
            )
        _empty_rollups(engine)
        monkeypatch.setattr(rollup_backfill, "BACKFILL_MIN_ROWS", 0)
        rollups.refresh(engine)
        for _ in range(15):  # and after it, the fold
            history.step()
            rollups.refresh(engine)
        _assert_equal_to_ledger(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("seed", [4, 5])
def test_the_worst_recipient_domains_read_from_rollups_equal_the_ledger(
    db: Engine, seed: int
) -> None:
    """The dashboard's deliverability (per mailbox, its N worst recipient domains) from the
    rollups' problem counters equals the same rule over the ledger, and adds up."""
    with db.begin() as conn:
        _seed(conn)
    history = History(db, seed)
    for _ in range(60):
        history.step()
    rollups.refresh(db)
    ctx = ReportContext(now=T0, caps=CapPolicy())
    ledger = replace(ctx, source="ledger")
    with db.connect() as conn:
        full = {
            (r["mailbox"], r["domain"]): r for r in deliverability(conn, ReportQuery(), ctx).rows
        }
        for top in (1, 2, 10):
            for q in (ReportQuery(), ReportQuery(since=(T0 + timedelta(days=3)).date())):
                fast = deliverability(conn, q, replace(ctx, domain_top=top)).rows
                slow = deliverability(conn, q, replace(ledger, domain_top=top)).rows
                assert fast == slow, (top, q)
                if q != ReportQuery():
                    continue
                totals = {r["mailbox"]: r for r in fast if r["domain"] == "*"}
                # The mailboxes' totals are the every-domain report's.
                assert totals == {mb: r for (mb, d), r in full.items() if d == "*"}
                for mailbox, total in totals.items():
                    mine = [r for r in fast if r["mailbox"] == mailbox and r["domain"] != "*"]
                    listed = [r for r in mine if r["domain"] != "(other)"]
                    assert len(listed) <= top
                    for metric in ("sent", "delivered", "bounced", "spam_reported"):
                        assert sum(r[metric] for r in mine) == total[metric], (mailbox, metric)
                    bad = [r["bounced"] + r["spam_reported"] for r in listed]
                    assert bad == sorted(bad, reverse=True) and all(bad)
                    # Nothing left out is worse than what is listed.
                    rest = [r["bounced"] + r["spam_reported"] for (mb, d), r in full.items()
                            if mb == mailbox and d not in ("*", "(other)")
                            and d not in {x["domain"] for x in listed}]  # fmt: skip
                    assert not bad or max(rest, default=0) <= bad[-1]
        # Not vacuous: some mailbox lists a domain and has an (other) row at top=1.
        one = deliverability(conn, ReportQuery(), replace(ctx, domain_top=1)).rows
        assert any(r["domain"] not in ("*", "(other)") for r in one)
        assert any(r["domain"] == "(other)" for r in one)


def test_the_generation_moves_with_every_refresh_that_changed_something(db: Engine) -> None:
    """A funnel read between two refreshes is served again (the same generation); a refresh
    that folded anything moves the generation, and the next read sees what it folded."""
    with db.begin() as conn:
        _seed(conn)
    history = History(db, 9)
    for _ in range(10):
        history.step()
    ctx = ReportContext(now=T0, caps=CapPolicy())
    with db.connect() as conn:
        assert rollups.generation(conn) is None  # never refreshed: nothing to key on
    rollups.refresh(db)
    with db.connect() as conn:
        first = rollups.generation(conn)
        before = funnel(conn, ReportQuery(), ctx).rows
    assert first is not None
    rollups.refresh(db)  # nothing new
    with db.connect() as conn:
        assert rollups.generation(conn) == first
        assert funnel(conn, ReportQuery(), ctx).rows == before
    while True:  # until a step enrolls someone new
        enrolled = len(history.enrollments)
        history.step()
        if len(history.enrollments) > enrolled:
            break
    rollups.refresh(db)
    with db.connect() as conn:
        assert rollups.generation(conn) != first
        after = funnel(conn, ReportQuery(), ctx).rows
        ledger = funnel(conn, ReportQuery(), replace(ctx, source="ledger")).rows
    assert after == ledger and after != before
    prospects_row = lambda rows: next(  # noqa: E731
        r for r in rows if r["cadence"] == "(all)" and r["stage"] == "prospect"
    )
    assert prospects_row(after)["count"] > prospects_row(before)["count"]
