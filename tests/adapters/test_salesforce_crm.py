"""SalesforceCrm against the local Salesforce stand-in: what is particular to Salesforce.

The behaviour every CRM shares is in the contract suite (``tests/adapters/crm``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.standins.crm_base import CrmStandin
from tests.support.standins.salesforce_api import SalesforceStandin, parse_soql
from touchflow.adapters._http.client import RetryPolicy
from touchflow.adapters.salesforce.crm import SalesforceCrm
from touchflow.adapters.salesforce.soql import domain_variants, soql_quote
from touchflow.domain.crm import CrmActivity, CrmCompany, CrmPerson
from touchflow.errors import ConfigError, FatalError, RateLimited

RETRY = RetryPolicy(max_attempts=3, backoff_base_s=0.001, backoff_max_s=0.005)
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def standin() -> Iterator[SalesforceStandin]:
    with SalesforceStandin(batch_size=5, timeout_hold_s=0.6) as running:
        yield running


def connect(standin: SalesforceStandin, **kwargs: Any) -> SalesforceCrm:
    kwargs.setdefault("client_id", standin.client_id)
    kwargs.setdefault("client_secret", standin.client_secret)
    kwargs.setdefault("retry", RETRY)
    kwargs.setdefault("timeout_s", 0.3)
    kwargs.setdefault("sleep", lambda s: None)
    return SalesforceCrm(instance_url=standin.base_url, **kwargs)


def calls(standin: SalesforceStandin, method: str, suffix: str) -> list[int]:
    return [s for m, p, s in standin.requests if m == method and p.endswith(suffix)]


def test_standin_implements_the_crm_standin_protocol(standin: SalesforceStandin) -> None:
    assert isinstance(standin, CrmStandin)


def test_needs_a_token_or_client_credentials() -> None:
    with pytest.raises(ConfigError, match="TOUCHFLOW_CRM__CLIENT_ID"):
        SalesforceCrm(instance_url="https://acme.my.salesforce.com")


# -- auth ----------------------------------------------------------------------------


def test_token_is_fetched_once_and_refreshed_once_on_invalid_session(
    standin: SalesforceStandin,
) -> None:
    with connect(standin) as crm:
        crm.list_owners()
        crm.list_owners()
        assert standin.token_requests == 1
        standin.expire_token()  # the session is revoked: 401 INVALID_SESSION_ID
        assert [o.email for o in crm.list_owners()] == ["integration@standin.test"]
        assert standin.token_requests == 2
        assert calls(standin, "GET", "/query").count(401) == 1
        # Refused again after the refresh: fatal, and exactly one refresh was tried.
        standin.fail_next(401, times=2)
        with pytest.raises(FatalError) as refused:
            crm.list_owners()
        assert refused.value.status == 401
        assert refused.value.vendor_code == "INVALID_SESSION_ID"
        assert standin.token_requests == 3
        assert calls(standin, "GET", "/query").count(401) == 3


def test_wrong_client_secret_is_fatal(standin: SalesforceStandin) -> None:
    with connect(standin, client_secret="nope") as crm, pytest.raises(FatalError) as refused:
        crm.list_owners()
    assert refused.value.vendor_code == "invalid_client"
    assert standin.token_requests == 1


def test_token_without_credentials_is_fatal_on_401(standin: SalesforceStandin) -> None:
    crm = connect(standin, access_token=standin.credentials, client_id=None, client_secret=None)
    standin.expire_token()
    with crm, pytest.raises(FatalError, match="INVALID_SESSION_ID"):
        crm.list_owners()
    assert standin.token_requests == 0


# -- limits and locks ---------------------------------------------------------------------


def test_request_limit_exceeded_is_rate_limited_and_not_retried(
    standin: SalesforceStandin,
) -> None:
    with connect(standin) as crm:
        standin.fail_next(403)  # TotalRequests Limit exceeded.
        with pytest.raises(RateLimited) as limited:
            crm.upsert_company(CrmCompany("acme.io", name="Acme"))
        assert limited.value.status == 403
        assert limited.value.vendor_code == "REQUEST_LIMIT_EXCEEDED"
        assert "TotalRequests" in str(limited.value)
        assert calls(standin, "GET", "/query") == [403]
        assert standin.count("company") == 0


def test_unable_to_lock_row_is_retried(standin: SalesforceStandin) -> None:
    with connect(standin) as crm:
        [person] = crm.upsert_people([CrmPerson("ana@acme.io", last_name="Ng")])
        standin.lock_rows(1)
        company = crm.upsert_company(CrmCompany("acme.io", name="Acme"))  # the create is locked
        standin.lock_rows(1)
        crm.associate(person, company)  # the PATCH is locked
        assert standin.count("company") == 1
        assert standin.record("person", person)["AccountId"] == company
        assert calls(standin, "POST", "/sobjects/Account/") == [400, 201]
        assert calls(standin, "PATCH", f"/sobjects/Contact/{person}") == [400, 204]


# -- people ---------------------------------------------------------------------------


def test_450_people_are_three_collection_requests(standin: SalesforceStandin) -> None:
    people = [CrmPerson(f"p{i}@bulk.example", last_name=f"P{i}") for i in range(450)]
    with connect(standin) as crm:
        ids = crm.upsert_people(people)
        assert len(set(ids)) == 450 and standin.count("person") == 450
        creates = [b for m, p, b in standin.bodies if m == "POST" and p.endswith("/sobjects")]
        assert [len(b["records"]) for b in creates] == [200, 200, 50]
        assert all(r["attributes"] == {"type": "Contact"} for b in creates for r in b["records"])
        assert len(calls(standin, "GET", "/query")) == 3  # one lookup per 200 emails

        again = crm.upsert_people([CrmPerson(p.email, title="VP") for p in people])
        assert again == ids and standin.count("person") == 450
        updates = [b for m, p, b in standin.bodies if m == "PATCH" and p.endswith("/sobjects")]
        assert [len(b["records"]) for b in updates] == [200, 200, 50]
        assert standin.record("person", ids[449])["Title"] == "VP"
        assert standin.record("person", ids[449])["LastName"] == "P449"  # not blanked


def test_people_by_external_id_field(standin: SalesforceStandin) -> None:
    with connect(standin, person_external_id_field="Touchflow_Email__c") as crm:
        ids = crm.upsert_people([CrmPerson("Ana@Acme.io", first_name="Ana")])
        assert crm.upsert_people([CrmPerson("ana@acme.io", title="CTO")]) == ids
    assert standin.count("person") == 1
    assert standin.record("person", ids[0])["Touchflow_Email__c"] == "ana@acme.io"
    assert calls(standin, "PATCH", "/composite/sobjects/Contact/Touchflow_Email__c") == [200, 200]
    assert calls(standin, "GET", "/query") == []


def test_leads_need_company_and_last_name(standin: SalesforceStandin) -> None:
    with SalesforceStandin(person_object="Lead") as leads:
        with connect(leads, person_object="Lead") as crm:
            [lead] = crm.upsert_people([CrmPerson("bo@globex.com", domain="globex.com")])
            crm.associate(lead, "001000000000099AAA")  # Leads have no account: a no-op
        record = leads.record("person", lead)
        assert record["Company"] == "globex.com" and record["LastName"] == "[not provided]"
        assert leads.count("association") == 0


# -- SOQL ---------------------------------------------------------------------------------


def test_quotes_in_emails_cannot_change_the_query(standin: SalesforceStandin) -> None:
    with connect(standin) as crm:
        [victim] = crm.upsert_people([CrmPerson("victim@acme.io", last_name="V")])
        evil = "x' OR Email != 'y@evil.example"
        ids = crm.upsert_people([CrmPerson(evil), CrmPerson("o'neil\\@acme.io")])
        assert victim not in ids and len(set(ids)) == 2
        assert standin.count("person") == 3
        assert crm.upsert_people([CrmPerson(evil)]) == ids[:1]
    # Looked up lower-cased (SOQL compares strings case-insensitively), quotes escaped.
    assert any("IN ('x\\' or email != \\'y@evil.example')" in q for q in standin.queries)
    assert any("'o\\'neil\\\\@acme.io'" in q for q in standin.queries)


@given(st.text(max_size=40))
def test_soql_quote_round_trips_through_the_parser(value: str) -> None:
    query = parse_soql(f"SELECT Id FROM Contact WHERE Email = {soql_quote(value)} LIMIT 1")
    assert [(c.field, c.op, c.value) for c in query.where] == [("Email", "=", value)]


def test_company_matches_the_usual_website_spellings(standin: SalesforceStandin) -> None:
    existing = standin.insert("Account", {"Name": "Acme", "Website": "https://www.acme.io/"})
    with connect(standin) as crm:
        assert crm.upsert_company(CrmCompany("ACME.io", industry="Software")) == existing
    assert standin.record("company", existing)["Industry"] == "Software"
    assert "https://www.acme.io/" in domain_variants("http://acme.io/about")


# -- paging -------------------------------------------------------------------------------


def test_owners_follow_next_records_url(standin: SalesforceStandin) -> None:
    seeded = {standin.seed_owner(f"ae{i}@corp.example", f"Ae {i}") for i in range(11)}
    with connect(standin) as crm:
        owners = crm.list_owners()
    assert seeded < {o.id for o in owners} and len(owners) == 12
    pages = [p for m, p, _ in standin.requests if m == "GET" and "/query/01g" in p]
    assert len(pages) == 2  # 12 users in batches of 5


def test_changes_merge_three_objects_in_time_order_across_pages(
    standin: SalesforceStandin,
) -> None:
    owner = standin.seed_owner("ae@corp.example", "Ae")
    expected = []
    for i in range(12):
        expected.append(
            standin.add_change("meeting_booked", f"m{i}@x.example", at=T0 + timedelta(minutes=i))
        )
        if i % 4 == 0:
            at = T0 + timedelta(minutes=i, seconds=30)
            expected.append(standin.add_change("deal_created", f"d{i}@x.example", at=at))
            expected.append(
                standin.add_change("owner_changed", f"m{i}@x.example", at=at, owner_id=owner)
            )
    # Two ContactHistory rows per owner change (names and ids): only the ids row counts.
    assert len(standin.records("ContactHistory")) == 6
    with connect(standin, changes_page_size=7) as crm:
        seen, cursor, pages = [], None, 0
        while True:
            page = crm.changes_since(T0 - timedelta(seconds=1), cursor)
            seen.extend(page.changes)
            cursor, pages = page.cursor, pages + 1
            if cursor is None:
                break
    assert pages == 3
    assert [c.external_id for c in seen] == expected
    assert [c.occurred_at for c in seen] == sorted(c.occurred_at for c in seen)
    assert {c.owner_id for c in seen if c.kind == "owner_changed"} == {owner}
    assert any("/query/01g" in p for _, p, _ in standin.requests)  # Events came in batches of 5
    assert all(
        "CreatedDate >= 2025-03-01T08:59:59Z" in q or "CreatedDate >= 2025-03-01T09:" in q
        for q in standin.queries
    )


def test_changes_cursor_is_checked(standin: SalesforceStandin) -> None:
    with connect(standin) as crm, pytest.raises(FatalError, match="cursor"):
        crm.changes_since(T0, "not-a-cursor")


# -- tasks --------------------------------------------------------------------------------


def test_task_is_idempotent_on_the_key_field(standin: SalesforceStandin) -> None:
    custom = {"Task": ["Touch_Key__c"]}
    with SalesforceStandin(custom_fields=custom, batch_size=5) as sf:
        with connect(sf, activity_key_field="Touch_Key__c") as crm:
            [person] = crm.upsert_people([CrmPerson("ana@acme.io", last_name="Ng")])
            call = CrmActivity(
                person_id=person,
                kind="call",
                subject="Call: connected",
                body="Talked pricing.",
                occurred_at=datetime(2025, 3, 4, 23, 30, tzinfo=UTC),
                external_key="enr-1:step-2:0",
                outcome="Connected",
            )
            task = crm.log_activity(call)
            assert crm.log_activity(call) == task
        assert sf.count("activity") == 1
        record = sf.record("activity", task)
        assert record["Touch_Key__c"] == "enr-1:step-2:0"
        assert record["WhoId"] == person and record["Status"] == "Completed"
        assert record["TaskSubtype"] == "Call" and record["CallDisposition"] == "Connected"
        assert record["ActivityDate"] == "2025-03-04"
        assert sum("FROM Task WHERE Touch_Key__c = 'enr-1:step-2:0'" in q for q in sf.queries) == 2


def test_task_key_field_must_exist(standin: SalesforceStandin) -> None:
    with connect(standin, activity_key_field="Missing__c") as crm:
        [person] = crm.upsert_people([CrmPerson("ana@acme.io", last_name="Ng")])
        activity = CrmActivity(person, "email", "Hi", "Body", T0, "k-1")
        with pytest.raises(FatalError, match="INVALID_FIELD"):
            crm.log_activity(activity)
