"""Deal rows from CSV and buying-committee coverage (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from touchflow.domain.committee import CommitteeMember, committee_role, coverage
from touchflow.domain.deal_rows import RowError, parse_deal_row, parse_stage_row
from touchflow.domain.deals import CommitteeRole, DealOutcome
from touchflow.domain.pipeline import Pipeline, load_pipeline

ROOT = Path(__file__).resolve().parents[2]
R = CommitteeRole


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return load_pipeline(ROOT / "config" / "pipeline.yaml")


ROW = {
    "deal_id": "D-1", "account_domain": "Acme.example", "owner_email": "Ana@YourCo.com",
    "amount": "12,500.50", "currency": "usd", "created_at": "2027-01-04",
    "close_date": "2027-03-31", "stage": "proposal", "closed_at": "", "outcome": "",
}  # fmt: skip


def test_a_good_row(pipeline: Pipeline) -> None:
    deal = parse_deal_row(ROW, pipeline)
    assert deal.account_domain == "acme.example" and deal.owner_email == "ana@yourco.com"
    assert deal.amount == 12500.5 and deal.currency == "USD"
    assert deal.created_at == datetime(2027, 1, 4, tzinfo=UTC)
    assert deal.close_date == date(2027, 3, 31) and deal.is_open


def test_the_won_stage_implies_the_outcome_and_needs_closed_at(pipeline: Pipeline) -> None:
    won = {**ROW, "stage": "closed_won", "closed_at": "2027-02-01T10:00:00+01:00"}
    deal = parse_deal_row(won, pipeline)
    assert deal.outcome is DealOutcome.WON
    assert deal.closed_at == datetime(2027, 2, 1, 9, tzinfo=UTC)
    with pytest.raises(RowError) as info:
        parse_deal_row({**won, "closed_at": ""}, pipeline)
    assert info.value.code == "missing_closed_at"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"deal_id": " "}, "missing_deal_id"),
        ({"stage": "Proposal!"}, "unknown_stage"),
        ({"amount": "-5"}, "bad_amount"),
        ({"amount": "nan"}, "bad_amount"),
        ({"currency": "dollars"}, "bad_currency"),
        ({"created_at": "yesterday"}, "bad_time"),
        ({"close_date": "31/03/2027"}, "bad_date"),
        ({"outcome": "maybe"}, "bad_outcome"),
        ({"closed_at": "2027-02-01"}, "bad_outcome"),
        ({"outcome": "lost", "closed_at": "2026-12-01"}, "bad_time"),
        ({"account_domain": "not a domain"}, "bad_domain"),
        ({"owner_email": "ana@"}, "bad_email"),
    ],
)
def test_bad_rows_say_why(pipeline: Pipeline, change: dict[str, str], code: str) -> None:
    with pytest.raises(RowError) as info:
        parse_deal_row({**ROW, **change}, pipeline)
    assert info.value.code == code, str(info.value)


def test_stage_rows(pipeline: Pipeline) -> None:
    change = parse_stage_row({"deal_id": "D-1", "stage": "demo", "entered_at": "2027-01-05T10:00"},
                             pipeline)  # fmt: skip
    assert change.entered_at == datetime(2027, 1, 5, 10, tzinfo=UTC)
    with pytest.raises(RowError, match=r"pipeline\.yaml stages: discovery"):
        parse_stage_row({"deal_id": "D-1", "stage": "won", "entered_at": "2027-01-05"}, pipeline)


def test_roles_come_from_the_crm_else_the_title(pipeline: Pipeline) -> None:
    assert committee_role(pipeline, R.BLOCKER, "CFO") == (R.BLOCKER, "crm")
    assert committee_role(pipeline, R.OTHER, "CFO") == (R.ECONOMIC_BUYER, "title")
    assert committee_role(pipeline, None, "Senior DevOps Engineer") == (
        R.TECHNICAL_EVALUATOR,
        "title",
    )
    assert committee_role(pipeline, None, None) == (R.OTHER, "none")


def test_weighted_coverage_single_threading_and_the_economic_buyer(pipeline: Pipeline) -> None:
    config = pipeline.committee  # economic_buyer 3, champion 3, technical_evaluator 2, end_user 1
    t1, t2 = datetime(2027, 1, 3, tzinfo=UTC), datetime(2027, 1, 10, tzinfo=UTC)
    t3 = datetime(2027, 2, 1, tzinfo=UTC)
    members = [
        CommitteeMember("cfo@a.example", R.ECONOMIC_BUYER, "crm", last_touched_at=t1),
        CommitteeMember("ceo@a.example", R.ECONOMIC_BUYER, "title", last_touched_at=t2),
        CommitteeMember("dev@a.example", R.TECHNICAL_EVALUATOR, "title"),
        CommitteeMember("x@a.example", R.BLOCKER, "crm", last_touched_at=t3),
    ]  # fmt: skip
    c = coverage(members, config)
    assert c.score == round(5 / 9, 4)
    assert c.covered == (R.ECONOMIC_BUYER, R.TECHNICAL_EVALUATOR)
    assert c.missing == (R.CHAMPION, R.END_USER)
    assert c.people == 4 and not c.single_threaded
    assert c.economic_buyer_last_touched_at == t2  # the blocker's later touch does not count
    assert c.days_since_economic_buyer_touch(datetime(2027, 1, 20, 12, tzinfo=UTC)) == 10
    alone = coverage(members[:1], config)
    assert alone.single_threaded and alone.score == round(3 / 9, 4)
    nobody = coverage([], config)
    assert nobody.score == 0 and nobody.single_threaded
    assert nobody.days_since_economic_buyer_touch(t2) is None
