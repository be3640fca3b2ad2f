"""The deal pull (``DealSource.deals_since``), one suite for every connector that has it.

Each backend is a connector on a stand-in over real HTTP on 127.0.0.1 (the fake:
in memory) with two controls, ``add_pipeline_deal`` and ``move_deal``, that
make deals the way a rep working in the CRM would. Stage ids are the vendor's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.adapters.crm.backends import BACKENDS
from touchflow.domain.deals import CommitteeRole, Deal, DealContact, DealOutcome, StageChange
from touchflow.ports import DealSource

T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
# Each CRM's own ids for three stages of its default pipeline.
STAGES = {
    "fake": ("appointmentscheduled", "contractsent", "closedwon"),
    "hubspot": ("appointmentscheduled", "contractsent", "closedwon"),
    "salesforce": ("Prospecting", "Negotiation/Review", "Closed Won"),
    "pipedrive": ("1", "5", "5"),  # won is a status in Pipedrive, not a stage
}
# Salesforce's single-currency org: amounts are in the connector's configured currency.
CURRENCY = {"salesforce": "USD"}


@pytest.fixture(params=sorted(STAGES))
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, DealSource, Any]]:
    name = request.param
    with BACKENDS[name]() as (connector, standin):
        assert isinstance(connector, DealSource)
        yield name, connector, standin if standin is not None else connector


def pull(
    source: DealSource, since: datetime
) -> tuple[list[Deal], list[StageChange], list[DealContact], int]:
    deals: list[Deal] = []
    changes: list[StageChange] = []
    contacts: list[DealContact] = []
    cursor, pages = None, 0
    while True:
        page = source.deals_since(since, cursor)
        pages += 1
        deals += page.deals
        changes += page.stage_changes
        contacts += page.contacts
        cursor = page.cursor
        if cursor is None:
            return deals, changes, contacts, pages


def test_deals_with_history_and_contact_roles(backend: tuple[str, DealSource, Any]) -> None:
    name, source, crm = backend
    first, commit, won = STAGES[name]
    a = crm.add_pipeline_deal(
        first, at=T0, amount=50_000.0, currency="EUR", domain="acme.example",
        name="Acme platform", close_date=date(2027, 3, 31),
        contacts=[("cfo@acme.example", "Decision maker"), ("dev@acme.example", None)],
    )  # fmt: skip
    b = crm.add_pipeline_deal(first, at=T0 + timedelta(hours=1), amount=8_000.0)
    c = crm.add_pipeline_deal(first, at=T0 + timedelta(hours=2))
    crm.move_deal(a, commit, at=T0 + timedelta(days=2))

    deals, changes, contacts, pages = pull(source, T0 - timedelta(seconds=1))
    assert pages >= 2  # page size 2: the cursor is followed
    by_id = {d.deal_id: d for d in deals}
    assert set(by_id) == {a, b, c}
    deal = by_id[a]
    assert deal.source == source.name
    assert (deal.stage, deal.amount) == (commit, 50_000.0)
    assert deal.currency == CURRENCY.get(name, "EUR")
    assert deal.account_domain == "acme.example" and deal.name == "Acme platform"
    assert deal.created_at == T0 and deal.close_date == date(2027, 3, 31)
    assert deal.is_open and deal.closed_at is None
    history = sorted((ch.entered_at, ch.stage) for ch in changes if ch.deal_id == a)
    assert history == [(T0, first), (T0 + timedelta(days=2), commit)]
    roles = {ct.email: ct.role for ct in contacts if ct.deal_id == a}
    # Pipedrive's participants have no role: the title decides later.
    cfo = CommitteeRole.OTHER if name == "pipedrive" else CommitteeRole.ECONOMIC_BUYER
    assert roles == {"cfo@acme.example": cfo, "dev@acme.example": CommitteeRole.OTHER}

    # Only what changed after the mark comes back; a won deal has its outcome and time.
    crm.move_deal(b, won, at=T0 + timedelta(days=5), outcome=DealOutcome.WON)
    later, later_changes, _, _ = pull(source, T0 + timedelta(days=3))
    assert [d.deal_id for d in later] == [b]
    assert later[0].outcome is DealOutcome.WON
    assert later[0].closed_at == T0 + timedelta(days=5)
    assert sorted({ch.stage for ch in later_changes}) == sorted({first, won})
    assert pull(source, T0 + timedelta(days=6))[0] == []
