"""Deals in the store: idempotent upserts, stage history, contacts, snapshots, and the
pipeline as known at a past time (SQLite + PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from touchflow.domain.deals import CommitteeRole, Deal, DealContact, DealOutcome, StageChange
from touchflow.domain.pipeline import Pipeline, load_pipeline
from touchflow.store.deals import (
    add_stage_changes,
    deal_contacts_for,
    deals_as_of,
    open_deals,
    snapshot,
    snapshot_dates,
    stage_history,
    upsert_contacts,
    upsert_deals,
    write_snapshot,
)
from touchflow.store.schema import deal_stage_changes, deals

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return load_pipeline(ROOT / "config" / "pipeline.yaml")


def deal(deal_id: str, stage: str, **kw: object) -> Deal:
    values: dict[str, object] = {
        "deal_id": deal_id,
        "source": "csv",
        "account_domain": "acme.example",
        "owner_email": "ana@yourco.com",
        "amount": 10_000.0,
        "currency": "USD",
        "stage": stage,
        "created_at": T0,
        "close_date": date(2027, 3, 31),
        **kw,
    }
    return Deal(**values)  # type: ignore[arg-type]


def upsert(db: Engine, pipeline: Pipeline, items: list[Deal], now: datetime = T0):  # type: ignore[no-untyped-def]
    with db.begin() as conn:
        return upsert_deals(conn, items, lambda d: pipeline.category_for(d.stage, d.outcome), now)


def test_a_second_import_changes_nothing(db: Engine, pipeline: Pipeline) -> None:
    items = [deal("d1", "discovery"), deal("d2", "proposal", amount=5000.0, currency="eur")]
    first = upsert(db, pipeline, items)
    assert (first.new, first.updated, first.unchanged, first.stage_changes) == (2, 0, 0, 2)
    with db.connect() as conn:
        before = conn.execute(select(deals).order_by(deals.c.deal_id)).all()
    again = upsert(db, pipeline, items, now=T0 + timedelta(days=1))
    assert (again.new, again.updated, again.unchanged, again.stage_changes) == (0, 0, 2, 0)
    with db.connect() as conn:
        after = conn.execute(select(deals).order_by(deals.c.deal_id)).all()
        n_changes = conn.scalar(select(func.count()).select_from(deal_stage_changes))
    assert before == after  # updated_at did not move either
    assert n_changes == 2
    assert after[1].currency == "EUR" and after[1].forecast_category == "best_case"


def test_a_stage_change_is_recorded_once(db: Engine, pipeline: Pipeline) -> None:
    upsert(db, pipeline, [deal("d1", "discovery")])
    later = T0 + timedelta(days=10)
    moved = upsert(db, pipeline, [deal("d1", "demo")], now=later)
    assert (moved.updated, moved.stage_changes) == (1, 1)
    again = upsert(db, pipeline, [deal("d1", "demo")], now=later + timedelta(days=1))
    assert (again.unchanged, again.stage_changes) == (1, 0)
    with db.connect() as conn:
        history = stage_history(conn)[("csv", "d1")]
        row = conn.execute(select(deals)).one()
    assert [(c.stage, c.entered_at) for c in history] == [("discovery", T0), ("demo", later)]
    assert row.updated_at == later and row.forecast_category == "best_case"


def test_history_given_first_is_not_doubled_by_the_current_stage(
    db: Engine, pipeline: Pipeline
) -> None:
    changes = [
        StageChange("d1", "discovery", T0),
        StageChange("d1", "proposal", T0 + timedelta(days=20)),
    ]
    with db.begin() as conn:
        assert add_stage_changes(conn, "csv", changes) == 2
        assert add_stage_changes(conn, "csv", changes) == 0
    counts = upsert(db, pipeline, [deal("d1", "proposal")])
    assert counts.stage_changes == 0
    with db.connect() as conn:
        assert len(stage_history(conn)[("csv", "d1")]) == 2


def test_deals_as_of_never_sees_the_future(db: Engine, pipeline: Pipeline) -> None:
    won_at = T0 + timedelta(days=60)
    with db.begin() as conn:
        add_stage_changes(
            conn,
            "csv",
            [
                StageChange("d1", "discovery", T0),
                StageChange("d1", "proposal", T0 + timedelta(days=20)),
                StageChange("d1", "closed_won", won_at),
            ],
        )
    upsert(
        db,
        pipeline,
        [
            deal("d1", "closed_won", closed_at=won_at, outcome=DealOutcome.WON),
            deal("d2", "discovery", created_at=T0 + timedelta(days=30)),
        ],
        now=won_at,
    )

    def at(when: datetime) -> dict[str, tuple[str, DealOutcome | None, int]]:
        with db.connect() as conn:
            return {
                h.deal.deal_id: (h.deal.stage, h.deal.outcome, len(h.stages))
                for h in deals_as_of(conn, when)
            }

    assert at(T0 - timedelta(seconds=1)) == {}
    assert at(T0) == {"d1": ("discovery", None, 1)}
    assert at(T0 + timedelta(days=19, hours=23)) == {"d1": ("discovery", None, 1)}
    # d2 exists from day 30; d1 moved to proposal on day 20
    assert at(T0 + timedelta(days=45)) == {
        "d1": ("proposal", None, 2),
        "d2": ("discovery", None, 1),
    }
    # One second before the win: still open, no closed_at.
    with db.connect() as conn:
        known = deals_as_of(conn, won_at - timedelta(seconds=1))
    d1 = next(h for h in known if h.deal.deal_id == "d1")
    assert d1.deal.closed_at is None and d1.deal.is_open
    assert d1.stage_at(T0 + timedelta(days=1)) == "discovery"
    assert at(won_at)["d1"] == ("closed_won", DealOutcome.WON, 3)


def test_deals_as_of_takes_amounts_from_the_snapshot_of_then(
    db: Engine, pipeline: Pipeline
) -> None:
    upsert(db, pipeline, [deal("d1", "discovery", amount=10_000.0)])
    day1 = date(2027, 1, 10)
    with db.begin() as conn:
        assert write_snapshot(conn, day1) == 1
    upsert(db, pipeline, [deal("d1", "discovery", amount=25_000.0)], now=T0 + timedelta(days=20))
    with db.connect() as conn:
        then = deals_as_of(conn, datetime(2027, 1, 15, tzinfo=UTC))
        before = deals_as_of(conn, datetime(2027, 1, 9, tzinfo=UTC))
    assert then[0].deal.amount == 10_000.0
    assert before[0].deal.amount == 25_000.0  # no snapshot by then: the current value


def test_contacts_upsert_by_person(db: Engine, pipeline: Pipeline) -> None:
    upsert(db, pipeline, [deal("d1", "demo")])
    contacts = [
        DealContact("d1", "Eve@Acme.example", CommitteeRole.ECONOMIC_BUYER, "c1"),
        DealContact("d1", None, CommitteeRole.OTHER, "c2", inferred=True),
        DealContact("d1", None, CommitteeRole.OTHER),  # nobody to key on: skipped
    ]
    with db.begin() as conn:
        assert upsert_contacts(conn, "csv", contacts) == 2
        eve = DealContact("d1", "eve@acme.example", CommitteeRole.CHAMPION)
        upsert_contacts(conn, "csv", [eve])
    with db.connect() as conn:
        found = deal_contacts_for(conn, [("csv", "d1")])[("csv", "d1")]
    assert [(c.email, c.role, c.crm_contact_id) for c in found] == [
        (None, CommitteeRole.OTHER, "c2"),
        ("eve@acme.example", CommitteeRole.CHAMPION, None),
    ]


def test_snapshot_is_idempotent_per_date(db: Engine, pipeline: Pipeline) -> None:
    upsert(
        db,
        pipeline,
        [
            deal("d1", "discovery"),
            deal("d2", "closed_lost", closed_at=T0, outcome=DealOutcome.LOST),
        ],
    )
    day = date(2027, 1, 5)
    with db.begin() as conn:
        assert write_snapshot(conn, day) == 1
    upsert(db, pipeline, [deal("d1", "negotiation")], now=T0 + timedelta(days=1))
    with db.begin() as conn:
        assert write_snapshot(conn, day) == 1
        assert write_snapshot(conn, day + timedelta(days=1)) == 1
    with db.connect() as conn:
        rows = snapshot(conn, day)
        assert snapshot_dates(conn) == [day, day + timedelta(days=1)]
        assert [d.deal_id for d in open_deals(conn)] == ["d1"]
    assert [(r.deal_id, r.stage, r.forecast_category) for r in rows] == [
        ("d1", "negotiation", "commit")
    ]


def test_thousands_of_deals_in_one_call(db: Engine, pipeline: Pipeline) -> None:
    """Past the scan threshold (the bulk path); 50,000 take 8 s / 3 s on PostgreSQL."""
    items = [deal(f"d{i}", "discovery", amount=float(i)) for i in range(5_000)]
    first = upsert(db, pipeline, items)
    assert first.new == 5_000 and first.stage_changes == 5_000
    moved = [deal(f"d{i}", "demo" if i % 2 else "discovery", amount=float(i)) for i in range(5_000)]
    again = upsert(db, pipeline, moved, now=T0 + timedelta(days=3))
    assert (again.updated, again.unchanged, again.stage_changes) == (2_500, 2_500, 2_500)
    with db.connect() as conn:
        history = stage_history(conn, [("csv", "d1"), ("csv", "d2")])
    assert [c.stage for c in history[("csv", "d1")]] == ["discovery", "demo"]
    assert [c.stage for c in history[("csv", "d2")]] == ["discovery"]
