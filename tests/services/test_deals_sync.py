"""Deals from a CRM (the fake), committee coverage over the touch ledger (SQLite + PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.support.harness import Harness, make_cadence, prospect
from touchflow.adapters.fake_crm import FakeCrm
from touchflow.domain.deals import CommitteeRole, DealOutcome
from touchflow.domain.pipeline import Pipeline, load_pipeline, pipeline_from_yaml
from touchflow.errors import ConfigError
from touchflow.ports import DealSource
from touchflow.services.committee import committee_report
from touchflow.services.deals import sync_deals
from touchflow.store.deals import deal_contacts_for, deals_as_of, stage_history
from touchflow.store.schema import deal_stage_changes, deals

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
FAKE_STAGES = "sources:\n  fake: {Discovery: discovery, Demo: demo, Won: closed_won}\n"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    text = (ROOT / "config" / "pipeline.yaml").read_text()
    return pipeline_from_yaml(text.replace("sources:\n", FAKE_STAGES, 1))


def test_fake_is_a_deal_source() -> None:
    assert isinstance(FakeCrm(), DealSource)


def test_sync_pulls_deals_history_and_roles_once(db: Engine, pipeline: Pipeline) -> None:
    crm = FakeCrm(page_size=2)
    a = crm.add_pipeline_deal("Discovery", at=T0, amount=50_000, domain="acme.example",
                              contacts=[("cfo@acme.example", "Economic Decision Maker"),
                                        ("dev@acme.example", "Technical Buyer")])  # fmt: skip
    b = crm.add_pipeline_deal("Discovery", at=T0 + timedelta(hours=1), domain="globex.example")
    crm.add_pipeline_deal("Demo", at=T0 + timedelta(hours=2))
    crm.move_deal(a, "Demo", at=T0 + timedelta(days=3))
    first = sync_deals(db, crm, pipeline, T0 + timedelta(days=4))
    assert (first.pages, first.deals.new) == (2, 3)
    again = sync_deals(db, crm, pipeline, T0 + timedelta(days=5))
    assert again.deals.new == again.deals.updated == 0 and again.stage_changes == 0
    crm.move_deal(b, "Won", at=T0 + timedelta(days=10), outcome=DealOutcome.WON)
    later = sync_deals(db, crm, pipeline, T0 + timedelta(days=11))
    assert (later.deals.updated, later.stage_changes) == (1, 1)  # only b, read since the mark
    with db.connect() as conn:
        rows = {r.deal_id: r for r in conn.execute(select(deals))}
        n = conn.scalar(select(func.count()).select_from(deal_stage_changes))
        history = stage_history(conn)
        contacts = deal_contacts_for(conn, [("fake", a)])[("fake", a)]
        before_win = {h.deal.deal_id: h.deal for h in deals_as_of(conn, T0 + timedelta(days=9))}
    assert rows[a].stage == "demo" and rows[a].source == "fake"
    assert rows[b].outcome == "won" and rows[b].forecast_category == "closed"
    assert n == 5
    assert [c.stage for c in history[("fake", a)]] == ["discovery", "demo"]
    assert {c.email: c.role for c in contacts} == {
        "cfo@acme.example": CommitteeRole.ECONOMIC_BUYER,
        "dev@acme.example": CommitteeRole.TECHNICAL_EVALUATOR,
    }
    assert before_win[b].is_open and before_win[b].stage == "discovery"


def test_an_unmapped_crm_stage_stops_the_sync_and_names_it(db: Engine) -> None:
    crm = FakeCrm()
    crm.add_pipeline_deal("Appointment Set", at=T0)
    with pytest.raises(ConfigError, match="'Appointment Set' are not mapped"):
        sync_deals(db, crm, load_pipeline(ROOT / "config" / "pipeline.yaml"), T0)
    with db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deals)) == 0


def test_committee_counts_days_since_the_economic_buyer_was_touched(
    db: Engine, pipeline: Pipeline, tmp_path: Path
) -> None:
    crm = FakeCrm()
    crm.add_pipeline_deal("Demo", at=T0, domain="acme.example",
                          contacts=[("cfo@acme.example", None)])  # fmt: skip
    sync_deals(db, crm, pipeline, T0)
    h = Harness(db, make_cadence(tmp_path / "c"))
    monday = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
    h.add([prospect("cfo@acme.example", title="Chief Financial Officer"),
           prospect("eng@acme.example", title="Staff Software Engineer"),
           prospect("ops@acme.example", title="Office Manager")], monday)  # fmt: skip
    # Only two of them get their first email; the office manager is never touched.
    with db.begin() as conn:
        from touchflow.store.schema import enrollments, prospects

        ops = conn.scalar(select(prospects.c.id).where(prospects.c.email == "ops@acme.example"))
        conn.execute(enrollments.delete().where(enrollments.c.prospect_id == ops))
        # As `touchflow import` normalizes them: the company domain of each.
        conn.execute(prospects.update().values(domain="acme.example"))
    h.tick(monday)
    with db.connect() as conn:
        (d,) = committee_report(conn, pipeline)
    members = {m.email: (m.role, m.via) for m in d.members}
    assert members == {
        "cfo@acme.example": (CommitteeRole.ECONOMIC_BUYER, "title"),
        "eng@acme.example": (CommitteeRole.TECHNICAL_EVALUATOR, "title"),
    }
    assert d.coverage.economic_buyer_last_touched_at == monday
    assert d.coverage.days_since_economic_buyer_touch(monday + timedelta(days=9, hours=2)) == 9
    assert d.coverage.score == round(5 / 9, 4) and not d.coverage.single_threaded


def _stored_equals_computed(db: Engine, pipeline: Pipeline) -> dict[Any, Any]:
    """The committee read model (brought up to date) equals committee_report computed now."""
    from touchflow.services.committee_coverage import coverage_by_deal

    with db.connect() as conn:
        stored = coverage_by_deal(conn, pipeline)
        computed = {
            (c.deal.source, c.deal.deal_id): (c.deal.owner_email, c.coverage.score,
                                               c.coverage.single_threaded)
            for c in committee_report(conn, pipeline)
        }  # fmt: skip
    assert stored == computed
    return stored


def test_the_stored_committee_coverage_follows_touches_titles_contacts_and_deals(
    db: Engine, pipeline: Pipeline, tmp_path: Path
) -> None:
    from touchflow.domain.deals import DealContact
    from touchflow.store.deals import upsert_contacts
    from touchflow.store.schema import enrollments, prospects

    crm = FakeCrm()
    a = crm.add_pipeline_deal("Demo", at=T0, domain="acme.example",
                              contacts=[("cfo@acme.example", None)])  # fmt: skip
    sync_deals(db, crm, pipeline, T0)
    first = _stored_equals_computed(db, pipeline)  # filled once: then kept up to date
    assert first[("fake", a)][1] == 0.0
    h = Harness(db, make_cadence(tmp_path / "c"))
    h.add([prospect("cfo@acme.example", title="Chief Financial Officer"),
           prospect("eng@acme.example", title="Staff Software Engineer"),
           prospect("ops@acme.example", title="Office Manager")], T0)  # fmt: skip
    with db.begin() as conn:
        ops = conn.scalar(select(prospects.c.id).where(prospects.c.email == "ops@acme.example"))
        conn.execute(enrollments.delete().where(enrollments.c.prospect_id == ops))
        conn.execute(prospects.update().values(domain="acme.example"))
    h.tick(T0)  # the CFO and the engineer touched
    got = _stored_equals_computed(db, pipeline)
    assert got[("fake", a)][1:] == (round(5 / 9, 4), False)
    with db.begin() as conn:  # a new title (an import or enrichment moves updated_at)
        conn.execute(
            prospects.update()
            .where(prospects.c.email == "eng@acme.example")
            .values(title="Office Manager", updated_at=T0 + timedelta(days=1))
        )
    assert _stored_equals_computed(db, pipeline)[("fake", a)][1] != got[("fake", a)][1]
    with db.begin() as conn:  # the CRM names the engineer's role
        upsert_contacts(conn, "fake", [
            DealContact(a, "eng@acme.example", CommitteeRole.TECHNICAL_EVALUATOR, None, False)
        ])  # fmt: skip
    assert _stored_equals_computed(db, pipeline)[("fake", a)][1] == round(5 / 9, 4)
    b = crm.add_pipeline_deal("Discovery", at=T0 + timedelta(days=2), domain="acme.example")
    sync_deals(db, crm, pipeline, T0 + timedelta(days=2))
    assert ("fake", b) in _stored_equals_computed(db, pipeline)
    crm.move_deal(a, "Won", at=T0 + timedelta(days=3), outcome=DealOutcome.WON)
    sync_deals(db, crm, pipeline, T0 + timedelta(days=3))
    assert ("fake", a) not in _stored_equals_computed(db, pipeline)  # closed: no longer open
