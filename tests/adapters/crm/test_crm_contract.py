"""One contract for every CRM connector: the fake, HubSpot, Pipedrive, Salesforce.

Each test gets a fresh backend from :data:`tests.adapters.crm.backends.BACKENDS`: a real
connector talking HTTP to a stand-in on 127.0.0.1 (or the in-memory fake). The
data controls (``seed_owner``, ``add_change``, ``count``, ``record``) come from
the stand-in, or from the fake itself; failure tests need a stand-in and are
skipped for the fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.adapters.crm.backends import BACKENDS, MAX_ATTEMPTS
from tests.support.standins.crm_base import CrmStandin
from touchflow.domain.crm import CrmActivity, CrmChange, CrmCompany, CrmDeal, CrmPerson
from touchflow.errors import FatalError, RateLimited, RetryableError
from touchflow.ports import CrmConnector


class Backend:
    def __init__(self, crm: CrmConnector, standin: CrmStandin | None) -> None:
        self.crm = crm
        self.standin = standin
        self.ctl: Any = standin if standin is not None else crm

    def needs_http(self) -> CrmStandin:
        if self.standin is None:
            pytest.skip(f"{self.crm.name} has no HTTP to fail")
        return self.standin


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with BACKENDS[request.param]() as (crm, standin):
        yield Backend(crm, standin)


def _values(record: Any) -> set[str]:
    """Every scalar in a record, as strings: where linked ids show up, whatever the vendor."""
    if isinstance(record, dict):
        return set().union(*(_values(v) for v in record.values())) if record else set()
    if isinstance(record, list | tuple | set):
        return set().union(*(_values(v) for v in record)) if record else set()
    return {str(record)} if record is not None else set()


PEOPLE = [
    CrmPerson("Ana@Acme.io", first_name="Ana", last_name="Ng", title="CTO"),
    CrmPerson("bo@acme.io", first_name="Bo"),
    CrmPerson("cy@globex.com", title="VP Sales"),
]


def _activity(person_id: str, key: str, kind: Any = "call") -> CrmActivity:
    return CrmActivity(
        person_id=person_id,
        kind=kind,
        subject="Call: connected",
        body="Talked about pricing.",
        occurred_at=datetime(2025, 3, 4, 15, 30, tzinfo=UTC),
        external_key=key,
        outcome="connected",
    )


def _all_changes(crm: CrmConnector, since: datetime, max_pages: int = 50) -> list[list[CrmChange]]:
    pages, cursor = [], None
    for _ in range(max_pages):
        page = crm.changes_since(since, cursor)
        pages.append(page.changes)
        cursor = page.cursor
        if cursor is None:
            return pages
    raise AssertionError(f"changes_since did not finish in {max_pages} pages")


# -- data ------------------------------------------------------------------------


def test_people_upsert_is_idempotent_by_email(backend: Backend) -> None:
    ids = backend.crm.upsert_people(PEOPLE)
    assert len(ids) == 3 and len(set(ids)) == 3
    again = backend.crm.upsert_people(
        [CrmPerson("ana@acme.io", title="CEO"), PEOPLE[2], CrmPerson("BO@acme.io")]
    )
    assert again == [ids[0], ids[2], ids[1]]
    assert backend.ctl.count("person") == 3
    assert "ana@acme.io" in {v.lower() for v in _values(backend.ctl.record("person", ids[0]))}


def test_company_upsert_by_domain(backend: Backend) -> None:
    first = backend.crm.upsert_company(CrmCompany("acme.io", name="Acme", employees=120))
    assert backend.crm.upsert_company(CrmCompany("ACME.io", name="Acme", country="DE")) == first
    other = backend.crm.upsert_company(CrmCompany("globex.com", name="Globex"))
    assert other != first
    assert backend.ctl.count("company") == 2


def test_associate_person_with_company(backend: Backend) -> None:
    [person] = backend.crm.upsert_people([PEOPLE[0]])
    company = backend.crm.upsert_company(CrmCompany("acme.io", name="Acme"))
    backend.crm.associate(person, company)
    backend.crm.associate(person, company)
    assert backend.ctl.count("association") == 1


def test_deal_is_linked_to_person_and_company(backend: Backend) -> None:
    [person] = backend.crm.upsert_people([PEOPLE[0]])
    company = backend.crm.upsert_company(CrmCompany("acme.io", name="Acme"))
    deal = backend.crm.create_deal(
        CrmDeal(name="Acme - pilot", person_id=person, company_id=company, amount=12000)
    )
    assert backend.ctl.count("deal") == 1
    linked = _values(backend.ctl.record("deal", deal))
    assert person in linked and company in linked


def test_owners_across_pages_and_assignment(backend: Backend) -> None:
    seeded = {backend.ctl.seed_owner(f"ae{i}@corp.example", f"Ae Number{i}") for i in range(5)}
    owners = backend.crm.list_owners()
    by_id = {o.id: o for o in owners}
    assert seeded <= set(by_id), "list_owners must follow every page"
    assert len(owners) == len(by_id), "no owner twice"
    some = sorted(seeded)[2]
    assert by_id[some].email.endswith("@corp.example")
    [person] = backend.crm.upsert_people([PEOPLE[1]])
    backend.crm.assign_owner(person, some)
    assert some in _values(backend.ctl.record("person", person))


def test_log_activity_is_idempotent_on_external_key(backend: Backend) -> None:
    [person] = backend.crm.upsert_people([PEOPLE[0]])
    first = backend.crm.log_activity(_activity(person, "enr-1:step-2:0"))
    assert backend.crm.log_activity(_activity(person, "enr-1:step-2:0")) == first
    other = backend.crm.log_activity(_activity(person, "enr-1:step-3:0", kind="email"))
    assert other != first
    backend.crm.log_activity(_activity(person, "enr-1:step-4:0", kind="note"))
    assert backend.ctl.count("activity") == 3


def test_changes_since_pages_through_each_change_once(backend: Backend) -> None:
    owner = backend.ctl.seed_owner("ae@corp.example", "Ae One")
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    before = since - timedelta(hours=1)
    for kind in ("meeting_booked", "deal_created"):
        backend.ctl.add_change(kind, f"old-{kind}@x.example", at=before)
    backend.ctl.add_change("owner_changed", "old-owner@x.example", at=before, owner_id=owner)
    expected: dict[str, tuple[str, str]] = {}
    for i in range(3):
        at = since + timedelta(minutes=1 + i)
        email = f"m{i}@x.example"
        expected[backend.ctl.add_change("meeting_booked", email, at=at)] = ("meeting_booked", email)
    for i in range(2):
        at = since + timedelta(minutes=10 + i)
        email = f"d{i}@x.example"
        expected[backend.ctl.add_change("deal_created", email, at=at)] = ("deal_created", email)
    at = since + timedelta(minutes=20)
    ext = backend.ctl.add_change("owner_changed", "o@x.example", at=at, owner_id=owner)
    expected[ext] = ("owner_changed", "o@x.example")

    pages = _all_changes(backend.crm, since)
    changes = [c for page in pages for c in page]
    assert len(pages) > 1, "the suite's page size must make paging happen"
    ids = [c.external_id for c in changes]
    assert len(ids) == len(set(ids)), f"a change came twice: {ids}"
    assert {c.external_id: (c.kind, c.person_email) for c in changes} == expected
    assert all(c.occurred_at > since for c in changes)
    owner_change = next(c for c in changes if c.kind == "owner_changed")
    assert owner_change.owner_id == owner


def test_check_fields_reports_each_custom_field_and_a_missing_one(backend: Backend) -> None:
    checks = backend.crm.check_fields()
    assert checks, "every backend here is configured to need a custom field"
    assert all(c.ok for c in checks), [c.problem for c in checks]
    assert all(c.object and c.field and c.purpose for c in checks)
    gone = checks[-1]
    backend.ctl.drop_field(gone.object, gone.field)
    again = {(c.object, c.field): c for c in backend.crm.check_fields()}
    assert set(again) == {(c.object, c.field) for c in checks}
    missing = again[gone.object, gone.field]
    assert not missing.ok and missing.problem and "missing" in missing.problem
    assert all(c.ok for key, c in again.items() if key != (gone.object, gone.field))


# -- failures ----------------------------------------------------------------------


def test_sync_survives_rate_limits_and_server_errors(backend: Backend) -> None:
    standin = backend.needs_http()
    standin.fail_next(429, times=2, retry_after=0.01)
    ids = backend.crm.upsert_people(PEOPLE[:2])
    standin.fail_next(503, times=2)
    company = backend.crm.upsert_company(CrmCompany("acme.io", name="Acme"))
    standin.fail_next(429)  # no Retry-After: backoff, or the vendor's reset header
    backend.crm.associate(ids[0], company)
    standin.fail_next(500)
    again = backend.crm.upsert_people(PEOPLE)
    standin.fail_next(502, times=MAX_ATTEMPTS - 1)
    activity = backend.crm.log_activity(_activity(ids[0], "k-1"))
    standin.fail_next(503)
    assert backend.crm.log_activity(_activity(ids[0], "k-1")) == activity
    assert again[:2] == ids
    assert backend.ctl.count("person") == 3
    assert backend.ctl.count("company") == 1
    assert backend.ctl.count("association") == 1
    assert backend.ctl.count("activity") == 1


def test_timeout_is_retried_without_duplicates(backend: Backend) -> None:
    standin = backend.needs_http()
    standin.fail_next("timeout")
    first = backend.crm.upsert_company(CrmCompany("acme.io", name="Acme"))
    assert backend.crm.upsert_company(CrmCompany("acme.io", name="Acme")) == first
    assert backend.ctl.count("company") == 1


def test_changes_paging_survives_failures_mid_sync(backend: Backend) -> None:
    standin = backend.needs_http()
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    expected = {
        backend.ctl.add_change("meeting_booked", f"m{i}@x.example", at=since + timedelta(minutes=i))
        for i in range(1, 6)
    }
    seen: list[str] = []
    cursor = None
    for n in range(50):
        if n % 2 == 1:
            standin.fail_next(503 if n % 4 == 1 else 429, retry_after=0.01)
        page = backend.crm.changes_since(since, cursor)
        seen.extend(c.external_id for c in page.changes)
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(expected)


def test_unauthorized_is_fatal_and_not_retried(backend: Backend) -> None:
    standin = backend.needs_http()
    standin.fail_next(401, times=2)
    with pytest.raises(FatalError) as first:
        backend.crm.upsert_people(PEOPLE[:1])
    assert first.value.status == 401
    assert first.value.connector == backend.crm.name
    assert first.value.operation == "upsert_people"
    assert not isinstance(first.value, RetryableError)
    # Not retried: the second scripted 401 is still there for the next call.
    with pytest.raises(FatalError):
        backend.crm.list_owners()
    backend.crm.upsert_people(PEOPLE[:1])
    assert backend.ctl.count("person") == 1


def test_exhausted_retries_raise_retryable(backend: Backend) -> None:
    standin = backend.needs_http()
    standin.fail_next(503, times=MAX_ATTEMPTS)
    with pytest.raises(RetryableError) as server:
        backend.crm.list_owners()
    assert server.value.status == 503 and not isinstance(server.value, RateLimited)
    standin.fail_next(429, times=MAX_ATTEMPTS, retry_after=0.01)
    with pytest.raises(RateLimited) as limited:
        backend.crm.upsert_company(CrmCompany("acme.io", name="Acme"))
    assert limited.value.status == 429
    assert limited.value.retry_after == pytest.approx(0.01)
    backend.crm.upsert_company(CrmCompany("acme.io", name="Acme"))
    assert backend.ctl.count("company") == 1
