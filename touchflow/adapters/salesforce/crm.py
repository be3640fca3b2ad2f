"""Push people, accounts, opportunities and tasks to Salesforce; read back what changed.

Talks to: the Salesforce REST API (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/)
at ``{instance_url}/services/data/{api_version}``: SOQL ``query`` (and its
``nextRecordsUrl`` continuation), sObject rows (``POST /sobjects/{Type}/``,
``PATCH /sobjects/{Type}/{Id}``) and sObject Collections
(``POST``/``PATCH /composite/sobjects``, 200 records a request). Auth is an
OAuth 2.0 bearer token: given (``access_token``) or fetched with the
client-credentials flow (``POST /services/oauth2/token`` with the connected
app's ``client_id``/``client_secret``). The local stand-in used by the tests is
:mod:`tests.support.standins.salesforce_api`.

Limits: Salesforce counts API requests per org over a rolling 24 hours
(15,000 + 1,000 a licence on Enterprise Edition) and caps long-running
concurrent requests. Both answer ``403`` with errorCode
``REQUEST_LIMIT_EXCEEDED``; both are :class:`~touchflow.errors.RateLimited`.
The concurrent one ("ConcurrentPerOrgLongTxn") clears in seconds, so it is
retried here with backoff; the daily one ("TotalRequests") is raised at once
(retrying within the process cannot help). There is no ``Retry-After``. Every
answer carries ``Sforce-Limit-Info: api-usage=n/limit``. Collections take at
most 200 records, so :meth:`SalesforceCrm.upsert_people` spends
``2 * ceil(n / 200)`` requests for ``n`` new people (one SOQL lookup and one
create per batch).

Mapping (touchflow -> Salesforce):

* person -> ``Contact`` (default) or ``Lead`` (``person_object="Lead"``),
  keyed on ``Email``: a SOQL lookup ``WHERE Email IN (...)`` (case-insensitive,
  the oldest record wins when the org holds duplicates), then a Collections
  create for the new ones and a Collections update for the rest. Only fields
  that are set are written, so an update never blanks a field.
  ``LastName`` (and a Lead's ``Company``) are required by Salesforce: a person
  without one is created with ``"[not provided]"``. Alternatively, with
  ``person_external_id_field`` (a unique External ID field holding the
  lower-cased email, e.g. ``Touchflow_Email__c``) people are upserted in one
  ``PATCH /composite/sobjects/{Type}/{field}`` per 200, without a lookup; in
  that mode the placeholder last name is also written on updates of people
  who have none.
* company -> ``Account``, keyed on the domain: by default ``Website IN`` the
  usual spellings of the domain (``acme.com``, ``www.acme.com``,
  ``https://acme.com/``...), since Website is free text; or an exact match on
  ``company_domain_field`` (a custom field such as ``Domain__c``).
* associate -> ``Contact.AccountId``. Leads have no account lookup until they
  are converted, so in Lead mode :meth:`~SalesforceCrm.associate` does nothing.
* deal -> ``Opportunity`` created with ``ContactId`` (API 46.0+), which makes
  the person the primary ``OpportunityContactRole``; ``CloseDate`` is
  ``deal_close_days`` ahead. An open opportunity with the same Name and
  ContactId is taken as the same deal, so a retried create does not add a
  second one.
* owner -> ``OwnerId``; owners are ``SELECT Id, Email, Name, IsActive FROM User``.
* setup check (:meth:`SalesforceCrm.check_fields`): ``GET
  sobjects/{Type}/describe`` of Task (the activity key field), and, when
  configured, of the person object (its External ID field) and Account (the
  domain field); each field is looked up by ``name`` in the answer's ``fields``,
  with its ``externalId`` and ``unique`` flags.
* activity -> a completed ``Task`` (``TaskSubtype`` Email / Call / Task,
  ``CallDisposition`` for call outcomes, ``ActivityDate`` the day it happened)
  whose ``activity_key_field`` (default ``Touchflow_Key__c``: create this custom
  text field, ideally External ID + Unique) holds the touch key; the key is
  looked up before the insert, so logging twice is one Task.
* changes -> ``Event`` rows created after ``since`` (meeting_booked; the
  person is ``Who.Email``), ``Opportunity`` rows created (deal_created;
  ``Contact.Email``) and ``ContactHistory``/``LeadHistory`` rows with
  ``Field = 'Owner'`` (owner_changed; field history tracking must be on for
  Owner). Salesforce writes two history rows per owner change, one with user
  names and one with user ids; only the id row is reported.
* deals (:meth:`SalesforceCrm.deals_since`, the pipeline's deal pull):
  ``Opportunity`` rows with ``LastModifiedDate`` after ``since`` (``Name``,
  ``StageName``, ``Amount``, ``CloseDate``, ``CreatedDate``, ``IsClosed``,
  ``IsWon``, ``Account.Website``, ``Owner.Email``), then for the page their
  ``OpportunityHistory`` rows (``StageName``, ``CreatedDate``: the stage history,
  which Salesforce writes itself) and ``OpportunityContactRole`` rows (``Role``
  such as "Economic Buyer" or "Decision Maker" is the committee role;
  ``Contact.Email``). A closed opportunity's ``closed_at`` is when its last
  history row was written. Amounts are in ``deal_currency`` (single-currency
  orgs have no ``CurrencyIsoCode``). ``StageName`` values are the org's stage
  labels: ``config/pipeline.yaml`` maps them.

Quirks:

* SOQL string literals are escaped (``\\``, ``'``, ``"``, control characters),
  so an email like ``o'neil@x.com`` cannot change a query's meaning.
* SOQL has no fractional seconds in datetime literals; ``changes_since``
  queries ``CreatedDate >=`` the whole second and drops what is not after
  ``since`` itself.
* A ``401 INVALID_SESSION_ID`` (expired or revoked session) fetches a new
  token and repeats the request once; a second 401, or a 401 without client
  credentials to refresh with, is :class:`~touchflow.errors.FatalError`.
* ``UNABLE_TO_LOCK_ROW`` (another transaction holds the row) is retryable.
* Creates go out exactly once per attempt: a timed-out create is not resent
  blindly; the whole operation is retried, and it looks the record up again
  first (people by email, accounts by domain, tasks by key, deals by name).

Errors: HTTP status and Salesforce's ``[{"message", "errorCode", "fields"}]``
become :mod:`touchflow.errors` in :mod:`touchflow.adapters._http` plus
:meth:`SalesforceCrm._api` (the Salesforce codes above); the error list is
carried in the message, the first ``errorCode`` as ``vendor_code``.

The package: :mod:`~touchflow.adapters.salesforce.soql` writes the query text
(literals, a domain's spellings), :mod:`~touchflow.adapters.salesforce.auth`
holds the OAuth token, :mod:`~touchflow.adapters.salesforce.errors` reads
Salesforce's error bodies; this module is the connector.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from touchflow.adapters._http.client import CrmHttp, RetryPolicy
from touchflow.adapters.closing import ClosesOnExit
from touchflow.adapters.salesforce.auth import BearerTransport, SalesforceAuth
from touchflow.adapters.salesforce.errors import CONNECTOR, MAX_MESSAGE, salesforce_error
from touchflow.adapters.salesforce.soql import (
    domain_variants,
    parse_sf_datetime,
    soql_datetime,
    soql_quote,
)
from touchflow.domain.batching import chunks
from touchflow.domain.committee import role_from_label
from touchflow.domain.crm import (
    ChangeKind,
    ChangePage,
    CrmActivity,
    CrmChange,
    CrmCompany,
    CrmDeal,
    CrmFieldCheck,
    CrmOwner,
    CrmPerson,
    DealPage,
)
from touchflow.domain.deals import Deal, DealContact, DealOutcome, StageChange
from touchflow.domain.normalize import domain_key
from touchflow.errors import (
    ConfigError,
    ConnectorError,
    FatalError,
    RateLimited,
    RetryableError,
)

__all__ = ["BATCH_SIZE", "SalesforceCrm"]

_log = logging.getLogger(__name__)

BATCH_SIZE = 200  # sObject Collections take at most 200 records a request
MISSING = "[not provided]"  # LastName / Company are required on create

_QUERY_CHARS = 8000  # keep a GET query's URL well below Salesforce's 16 KB limit
_USER_ID = re.compile(r"^005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
_KIND_ORDER: dict[ChangeKind, int] = {"meeting_booked": 0, "deal_created": 1, "owner_changed": 2}
_SUBTYPE = {"email": "Email", "call": "Call"}


# -- helpers ---------------------------------------------------------------------


def _without(fields: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != name}


def _in_list(values: Sequence[str]) -> Iterator[str]:
    """SOQL ``IN (...)`` lists of at most BATCH_SIZE values and _QUERY_CHARS characters."""
    batch: list[str] = []
    size = 0
    for value in values:
        quoted = soql_quote(value)
        if batch and (len(batch) == BATCH_SIZE or size + len(quoted) > _QUERY_CHARS):
            yield ", ".join(batch)
            batch, size = [], 0
        batch.append(quoted)
        size += len(quoted) + 2
    if batch:
        yield ", ".join(batch)


def _daily_limit(error: ConnectorError) -> bool:
    """The org's 24-hour API allowance is spent: retrying within the process cannot help."""
    return error.vendor_code == "REQUEST_LIMIT_EXCEEDED" and "Concurrent" not in str(error)


class _CreateFailed(Exception):
    """Internal: a create (sent once) failed retryably; the operation may look up and retry."""

    def __init__(self, error: RetryableError) -> None:
        super().__init__(str(error))
        self.error = error


# -- the connector ---------------------------------------------------------------------


class SalesforceCrm(SalesforceAuth, ClosesOnExit):
    """:class:`~touchflow.domain.crm.CrmConnector` over the Salesforce REST API. Thread-safe.

    ``retry`` governs both the HTTP-level retries of reads and idempotent
    writes (:class:`~touchflow.adapters._http.client.CrmHttp`) and the operation-level
    retries around creates. ``transport`` replaces the network (tests).
    """

    name = CONNECTOR

    def __init__(
        self,
        *,
        instance_url: str,
        access_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        api_version: str = "v60.0",
        person_object: Literal["Lead", "Contact"] = "Contact",
        person_external_id_field: str | None = None,
        company_domain_field: str | None = None,
        activity_key_field: str = "Touchflow_Key__c",
        property_fields: Mapping[str, str] | None = None,
        default_stage: str = "Prospecting",
        deal_close_days: int = 30,
        changes_page_size: int = 200,
        deal_currency: str = "USD",
        retry: RetryPolicy | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not instance_url:
            raise ConfigError("SalesforceCrm needs instance_url (TOUCHFLOW_CRM__INSTANCE_URL)")
        if not access_token and not (client_id and client_secret):
            raise ConfigError(
                "SalesforceCrm needs an access token (TOUCHFLOW_CRM__TOKEN) or OAuth client "
                "credentials (TOUCHFLOW_CRM__CLIENT_ID and TOUCHFLOW_CRM__CLIENT_SECRET); "
                "neither was set"
            )
        if person_object not in ("Lead", "Contact"):
            raise ConfigError(f"person_object must be 'Lead' or 'Contact', not {person_object!r}")
        if not re.fullmatch(r"v\d+\.\d", api_version):
            raise ConfigError(f"api_version must look like 'v60.0', not {api_version!r}")
        self.instance_url = instance_url.rstrip("/")
        self.token_url = token_url or f"{self.instance_url}/services/oauth2/token"
        self.api_version = api_version
        self.person_object = person_object
        self.person_external_id_field = person_external_id_field
        self.company_domain_field = company_domain_field
        self.activity_key_field = activity_key_field
        self.property_fields = dict(
            property_fields if property_fields is not None else {"lead_source": "LeadSource"}
        )
        self.default_stage = default_stage
        self.deal_close_days = deal_close_days
        self.changes_page_size = max(1, changes_page_size)
        self.deal_currency = deal_currency
        self.retry = retry or RetryPolicy()
        self._client_id = client_id
        self._client_secret = client_secret
        self._token = access_token
        self._token_lock = threading.Lock()
        self._sleep = sleep
        self._now = now
        self.token_fetches = 0

        inner = transport or httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10)
        )
        common: dict[str, Any] = {
            "connector": CONNECTOR,
            "base_url": self.instance_url,
            "error_parser": salesforce_error,
            "quota": None,  # Sforce-Limit-Info reports a 24 h budget: nothing to pace on
            "timeout": timeout_s,
            "sleep": sleep,
        }
        # Reads and idempotent writes (PATCH by id, upsert by external id).
        self._http = CrmHttp(
            **common, retry=self.retry, transport=BearerTransport(inner, self._current_token)
        )
        # Creates: one attempt; the operation is retried as a whole, looking up first.
        self._http_once = CrmHttp(
            **common,
            retry=RetryPolicy(max_attempts=1),
            transport=BearerTransport(inner, self._current_token),
        )
        self._token_client = httpx.Client(transport=inner, timeout=timeout_s)

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Release HTTP connections."""
        self._http.close()
        self._http_once.close()
        self._token_client.close()

    # -- the one place Salesforce codes become errors --------------------------------

    def _api(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        once: bool = False,
    ) -> Any:
        """One REST call: token on demand, one refresh on 401, Salesforce codes mapped.

        ``once``: a create, sent at most once per call (no HTTP-level retry).
        """
        try:
            return self._send(
                method, path, operation=operation, params=params, json=json, once=once
            )
        except RetryableError as exc:
            if once and not _daily_limit(exc):
                raise _CreateFailed(exc) from exc
            raise

    def _send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None,
        json: Any,
        once: bool,
    ) -> Any:
        http = self._http_once if once else self._http
        refreshed = False
        retries = 0
        while True:
            token = self._token or self.authenticate()
            try:
                return http.request(method, path, operation=operation, params=params, json=json)
            except FatalError as exc:
                code = exc.vendor_code
                if exc.status == 401 and not refreshed and self.can_refresh:
                    refreshed = True
                    _log.info("salesforce.%s: session refused, fetching a new token", operation)
                    self.authenticate(stale=token)
                    continue
                kw: dict[str, Any] = {
                    "connector": CONNECTOR,
                    "operation": operation,
                    "status": exc.status,
                    "vendor_code": code,
                }
                message = str(exc).split(": ", 1)[-1]
                error: RetryableError
                if code == "REQUEST_LIMIT_EXCEEDED":
                    error = RateLimited(message, retry_after=None, **kw)
                elif code == "UNABLE_TO_LOCK_ROW":
                    error = RetryableError(message, **kw)
                else:
                    raise
                if once or _daily_limit(error) or retries + 1 >= self.retry.max_attempts:
                    raise error from exc
                retries += 1
                self._sleep(self.retry.backoff(retries, random.random()))

    def _retrying(self, operation: str, attempt: Callable[[], Any]) -> Any:
        """Run a look-up-then-create ``attempt`` again when its create failed retryably.

        Only failures of the create itself (:class:`_CreateFailed`) are retried
        here: the look-ups were already retried by the HTTP layer.
        """
        attempts = max(1, self.retry.max_attempts)
        for n in range(1, attempts + 1):
            try:
                return attempt()
            except _CreateFailed as failed:
                exc = failed.error
                wait = exc.retry_after if isinstance(exc, RateLimited) else None
                if n == attempts or (wait is not None and wait > self.retry.max_retry_after_s):
                    raise exc from exc.__cause__
                delay = wait if wait is not None else self.retry.backoff(n, random.random())
                _log.info("salesforce.%s failed (%s); retrying in %.2fs", operation, exc, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _data(self, suffix: str) -> str:
        return f"/services/data/{self.api_version}/{suffix.lstrip('/')}"

    def query(self, soql: str, *, operation: str = "query") -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, following ``nextRecordsUrl`` lazily."""
        body = self._api("GET", self._data("query"), operation=operation, params={"q": soql})
        while True:
            yield from body.get("records") or []
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            body = self._api("GET", next_url, operation=operation)

    def _saved(
        self, results: Any, operation: str, expected: int
    ) -> list[tuple[str | None, list[dict[str, Any]]]]:
        """Collections SaveResults as (id, errors) pairs; a malformed answer is Fatal."""
        if not isinstance(results, list) or len(results) != expected:
            raise FatalError(
                f"expected {expected} save results, got {results!r:.200}",
                connector=CONNECTOR,
                operation=operation,
            )
        return [
            (r.get("id") if r.get("success") else None, list(r.get("errors") or []))
            for r in results
        ]

    def _raise_save_errors(
        self, operation: str, failed: list[tuple[str, list[dict[str, Any]]]]
    ) -> None:
        """Per-record failures: UNABLE_TO_LOCK_ROW alone is retryable, anything else Fatal."""
        if not failed:
            return
        errors = [
            {
                "message": e.get("message"),
                "errorCode": e.get("statusCode") or e.get("errorCode"),
                "fields": e.get("fields") or [],
                "record": key,
            }
            for key, errs in failed
            for e in errs
        ] or [{"message": "save failed", "errorCode": None, "fields": [], "record": failed[0][0]}]
        codes = {e["errorCode"] for e in errors}
        text = json.dumps(errors, separators=(",", ":"), ensure_ascii=False)[:MAX_MESSAGE]
        kind = RetryableError if codes == {"UNABLE_TO_LOCK_ROW"} else FatalError
        error = kind(
            f"{len(failed)} record(s) not saved ({text})",
            connector=CONNECTOR,
            operation=operation,
            status=200,
            vendor_code=str(errors[0]["errorCode"]),
        )
        if isinstance(error, RetryableError):
            raise _CreateFailed(error)
        raise error

    # -- people ----------------------------------------------------------------------

    def _person_fields(self, person: CrmPerson) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "FirstName": person.first_name,
            "LastName": person.last_name,
            "Title": person.title,
            "Phone": person.phone,
            "OwnerId": person.owner_id,
        }
        if self.person_object == "Lead":
            fields["Company"] = person.company or (
                domain_key(person.domain) if person.domain else None
            )
        for name, value in person.properties.items():
            target = self.property_fields.get(name)
            if target and value is not None:
                fields[target] = value
        return {k: v for k, v in fields.items() if v is not None and v != ""}

    def _merged_people(self, people: Sequence[CrmPerson]) -> tuple[list[str], dict[str, dict]]:
        """Order of keys (lower-cased emails) and one field dict per distinct email."""
        keys: list[str] = []
        merged: dict[str, dict[str, Any]] = {}
        for person in people:
            key = person.email.strip().lower()
            if not key or "@" not in key:
                raise FatalError(
                    f"not an email address: {person.email!r}",
                    connector=CONNECTOR,
                    operation="upsert_people",
                )
            keys.append(key)
            fields = merged.setdefault(key, {"Email": person.email.strip()})
            fields.update(self._person_fields(person))
        return keys, merged

    def find_people(self, emails: Sequence[str]) -> dict[str, str]:
        """Existing people by lower-cased email -> Id (the oldest one on duplicates)."""
        found: dict[str, str] = {}
        distinct = list(dict.fromkeys(e.strip().lower() for e in emails))
        for values in _in_list(distinct):
            soql = (
                f"SELECT Id, Email FROM {self.person_object} WHERE Email IN ({values}) "
                "ORDER BY CreatedDate, Id"
            )
            for record in self.query(soql, operation="upsert_people"):
                email = str(record.get("Email") or "").lower()
                found.setdefault(email, str(record["Id"]))
        return found

    def upsert_people(self, people: Sequence[CrmPerson]) -> list[str]:
        """Create or update people by email (200 a request); their Ids, in input order."""
        if not people:
            return []
        keys, merged = self._merged_people(people)
        if self.person_external_id_field:
            ids = self._retrying("upsert_people", lambda: self._upsert_by_external_id(merged))
        else:
            ids = self._retrying("upsert_people", lambda: self._upsert_by_lookup(merged))
        return [ids[key] for key in keys]

    def _upsert_by_lookup(self, merged: dict[str, dict[str, Any]]) -> dict[str, str]:
        operation = "upsert_people"
        ids = self.find_people(list(merged))
        kind = self.person_object
        updates = [(key, merged[key]) for key in merged if key in ids]
        creates = [(key, merged[key]) for key in merged if key not in ids]
        failed: list[tuple[str, list[dict[str, Any]]]] = []
        for batch in chunks(updates, BATCH_SIZE):
            records = [
                {"attributes": {"type": kind}, "id": ids[key], **_without(fields, "Email")}
                for key, fields in batch
            ]
            results = self._api(
                "PATCH",
                self._data("composite/sobjects"),
                operation=operation,
                json={"allOrNone": False, "records": records},
            )
            for (key, _), (rid, errors) in zip(
                batch, self._saved(results, operation, len(batch)), strict=True
            ):
                if rid is None:
                    failed.append((key, errors))
        for batch in chunks(creates, BATCH_SIZE):
            records = []
            for _, fields in batch:
                record = {"attributes": {"type": kind}, **fields}
                record.setdefault("LastName", MISSING)
                if kind == "Lead":
                    record.setdefault("Company", MISSING)
                records.append(record)
            results = self._api(
                "POST",
                self._data("composite/sobjects"),
                operation=operation,
                json={"allOrNone": False, "records": records},
                once=True,
            )
            for (key, _), (rid, errors) in zip(
                batch, self._saved(results, operation, len(batch)), strict=True
            ):
                if rid is None:
                    failed.append((key, errors))
                else:
                    ids[key] = rid
        self._raise_save_errors(operation, failed)
        return ids

    def _upsert_by_external_id(self, merged: dict[str, dict[str, Any]]) -> dict[str, str]:
        operation = "upsert_people"
        field = self.person_external_id_field
        assert field is not None
        kind = self.person_object
        ids: dict[str, str] = {}
        failed: list[tuple[str, list[dict[str, Any]]]] = []
        items = list(merged.items())
        for batch in chunks(items, BATCH_SIZE):
            records = []
            for key, fields in batch:
                record = {"attributes": {"type": kind}, field: key, **fields}
                record.setdefault("LastName", MISSING)
                if kind == "Lead":
                    record.setdefault("Company", MISSING)
                records.append(record)
            results = self._api(  # an upsert by key: safe to resend
                "PATCH",
                self._data(f"composite/sobjects/{kind}/{field}"),
                operation=operation,
                json={"allOrNone": False, "records": records},
            )
            for (key, _), (rid, errors) in zip(
                batch, self._saved(results, operation, len(batch)), strict=True
            ):
                if rid is None:
                    failed.append((key, errors))
                else:
                    ids[key] = rid
        self._raise_save_errors(operation, failed)
        return ids

    # -- companies -------------------------------------------------------------------

    def find_company(self, domain: str) -> str | None:
        """The oldest Account for ``domain``, or None."""
        if self.company_domain_field:
            where = f"{self.company_domain_field} = {soql_quote(domain_key(domain))}"
        else:
            where = f"Website IN ({', '.join(soql_quote(v) for v in domain_variants(domain))})"
        soql = f"SELECT Id FROM Account WHERE {where} ORDER BY CreatedDate, Id LIMIT 1"
        for record in self.query(soql, operation="upsert_company"):
            return str(record["Id"])
        return None

    def upsert_company(self, company: CrmCompany) -> str:
        """Create or update the Account for ``company.domain``; its Id."""
        domain = domain_key(company.domain)
        if not domain:
            raise FatalError(
                f"not a domain: {company.domain!r}", connector=CONNECTOR, operation="upsert_company"
            )
        fields = {
            "Name": company.name,
            "Industry": company.industry,
            "NumberOfEmployees": company.employees,
            "BillingCountry": company.country,
            "OwnerId": company.owner_id,
        }
        fields = {k: v for k, v in fields.items() if v is not None and v != ""}

        def attempt() -> str:
            existing = self.find_company(domain)
            if existing is not None:
                if fields:
                    self._api(
                        "PATCH",
                        self._data(f"sobjects/Account/{existing}"),
                        operation="upsert_company",
                        json=fields,
                    )
                return existing
            body = {"Name": domain, **fields}
            body[self.company_domain_field or "Website"] = domain
            created = self._api(
                "POST",
                self._data("sobjects/Account/"),
                operation="upsert_company",
                json=body,
                once=True,
            )
            return str(created["id"])

        return str(self._retrying("upsert_company", attempt))

    # -- links, owners, deals -------------------------------------------------------

    def associate(self, person_id: str, company_id: str) -> None:
        """Set ``Contact.AccountId`` (a no-op for Leads, which have no account lookup)."""
        if self.person_object == "Lead":
            _log.debug("salesforce.associate: Leads have no AccountId; %s left as is", person_id)
            return
        self._api(
            "PATCH",
            self._data(f"sobjects/Contact/{person_id}"),
            operation="associate",
            json={"AccountId": company_id},
        )

    def assign_owner(self, person_id: str, owner_id: str) -> None:
        """Make ``owner_id`` (a User Id) the person's OwnerId."""
        self._api(
            "PATCH",
            self._data(f"sobjects/{self.person_object}/{person_id}"),
            operation="assign_owner",
            json={"OwnerId": owner_id},
        )

    def create_deal(self, deal: CrmDeal) -> str:
        """An Opportunity with the person as primary contact (``ContactId``); its Id."""
        operation = "create_deal"
        close = (self._now() + timedelta(days=self.deal_close_days)).date().isoformat()
        body: dict[str, Any] = {
            "Name": deal.name,
            "StageName": deal.stage or self.default_stage,
            "CloseDate": close,
            "AccountId": deal.company_id,
            "OwnerId": deal.owner_id,
            "Amount": deal.amount,
        }
        if self.person_object == "Contact":
            body["ContactId"] = deal.person_id
        body = {k: v for k, v in body.items() if v is not None}

        def attempt() -> str:
            if self.person_object == "Contact":
                soql = (
                    "SELECT Id FROM Opportunity WHERE ContactId = "
                    f"{soql_quote(deal.person_id)} AND Name = {soql_quote(deal.name)} "
                    "AND IsClosed = false ORDER BY CreatedDate, Id LIMIT 1"
                )
                for record in self.query(soql, operation=operation):
                    return str(record["Id"])
            created = self._api(
                "POST",
                self._data("sobjects/Opportunity/"),
                operation=operation,
                json=body,
                once=True,
            )
            return str(created["id"])

        return str(self._retrying(operation, attempt))

    def list_owners(self) -> list[CrmOwner]:
        """Every User, across all ``nextRecordsUrl`` pages."""
        soql = "SELECT Id, Email, Name, IsActive FROM User ORDER BY Id"
        return [
            CrmOwner(
                id=str(r["Id"]),
                email=str(r.get("Email") or ""),
                name=r.get("Name"),
                active=bool(r.get("IsActive", True)),
            )
            for r in self.query(soql, operation="list_owners")
        ]

    # -- setup -----------------------------------------------------------------------

    def check_fields(self) -> list[CrmFieldCheck]:
        """The custom fields this connector is configured to use, from each object's describe."""
        wanted: list[tuple[str, str, str, bool]] = [  # object, field, purpose, must be ext. id
            ("Task", self.activity_key_field, "a touch is logged as one Task, found by its key",
             False),
        ]  # fmt: skip
        if self.person_external_id_field:
            wanted.append((self.person_object, self.person_external_id_field,
                           "people are upserted on it (the lower-cased email)", True))  # fmt: skip
        if self.company_domain_field:
            wanted.append(("Account", self.company_domain_field,
                           "accounts are matched on it (the domain)", False))  # fmt: skip
        described: dict[str, dict[str, dict[str, Any]]] = {}
        out = []
        for obj, name, purpose, external in wanted:
            if obj not in described:
                answer = self._api(
                    "GET", self._data(f"sobjects/{obj}/describe"), operation="check_fields"
                )
                described[obj] = {
                    str(f.get("name", "")).lower(): f for f in (answer or {}).get("fields") or []
                }
            field = described[obj].get(name.lower())
            problem = note = None
            if field is None:
                problem = f"missing: create a custom text field {name} on {obj}" + (
                    " marked External ID and Unique" if external else ""
                )
            elif external and not field.get("externalId"):
                problem = "exists but is not an External ID field: upserts need one"
            elif obj == "Task" and not (field.get("unique") and field.get("externalId")):
                note = "not External ID + Unique: one touch logged twice at once could be two Tasks"
            out.append(CrmFieldCheck(obj, name, purpose, problem=problem, note=note))
        return out

    # -- activities ------------------------------------------------------------------

    def find_activity(self, external_key: str) -> str | None:
        """The Task already logged under ``external_key``, or None."""
        soql = (
            f"SELECT Id FROM Task WHERE {self.activity_key_field} = {soql_quote(external_key)} "
            "ORDER BY CreatedDate, Id LIMIT 1"
        )
        for record in self.query(soql, operation="log_activity"):
            return str(record["Id"])
        return None

    def log_activity(self, activity: CrmActivity) -> str:
        """A completed Task on the person; the same ``external_key`` twice is one Task."""
        occurred = activity.occurred_at
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        body: dict[str, Any] = {
            "Subject": activity.subject[:255],
            "Description": activity.body[:32000],
            "ActivityDate": occurred.astimezone(UTC).date().isoformat(),
            "WhoId": activity.person_id,
            "Status": "Completed",
            "TaskSubtype": _SUBTYPE.get(activity.kind, "Task"),
            self.activity_key_field: activity.external_key,
        }
        if activity.kind == "call":
            body["CallType"] = "Outbound"
            if activity.outcome:
                body["CallDisposition"] = activity.outcome[:255]
        if activity.owner_id:
            body["OwnerId"] = activity.owner_id

        def attempt() -> str:
            existing = self.find_activity(activity.external_key)
            if existing is not None:
                return existing
            try:
                created = self._api(
                    "POST",
                    self._data("sobjects/Task/"),
                    operation="log_activity",
                    json=body,
                    once=True,
                )
            except FatalError as exc:
                # A unique key field refused a twin logged concurrently: that one is ours.
                if exc.vendor_code == "DUPLICATE_VALUE":
                    found = self.find_activity(activity.external_key)
                    if found is not None:
                        return found
                raise
            return str(created["id"])

        return str(self._retrying("log_activity", attempt))

    # -- changes ---------------------------------------------------------------------

    def _change_stream(self, kind: ChangeKind, floor: str) -> Iterator[CrmChange]:
        created = f"CreatedDate >= {floor}"
        order = "ORDER BY CreatedDate, Id"
        if kind == "meeting_booked":
            soql = (
                "SELECT Id, CreatedDate, Subject, OwnerId, Who.Email FROM Event "
                f"WHERE {created} AND WhoId != null {order}"
            )
        elif kind == "deal_created":
            soql = (
                "SELECT Id, CreatedDate, Name, OwnerId, Contact.Email FROM Opportunity "
                f"WHERE {created} {order}"
            )
        else:
            obj = self.person_object
            soql = (
                f"SELECT Id, CreatedDate, NewValue, {obj}.Email FROM {obj}History "
                f"WHERE Field = 'Owner' AND {created} {order}"
            )
        for r in self.query(soql, operation="changes_since"):
            at = parse_sf_datetime(str(r["CreatedDate"]))
            if kind == "meeting_booked":
                email, detail, owner = (r.get("Who") or {}).get("Email"), r.get("Subject"), None
            elif kind == "deal_created":
                email, detail, owner = (r.get("Contact") or {}).get("Email"), r.get("Name"), None
            else:
                new = r.get("NewValue")
                if not isinstance(new, str) or not _USER_ID.match(new):
                    continue  # the names twin of the ids row
                email = (r.get(self.person_object) or {}).get("Email")
                detail, owner = None, new
            if not email:
                continue  # no person with an email behind it: nothing a cadence can match
            yield CrmChange(
                kind=kind,
                person_email=str(email),
                occurred_at=at,
                external_id=str(r["Id"]),
                owner_id=owner,
                detail=detail,
            )

    def changes_since(self, since: datetime, cursor: str | None = None) -> ChangePage:
        """Meetings, deals and owner changes after ``since``, oldest first, a page at a time.

        The cursor is opaque (base64 JSON of the last change returned: its time,
        kind and Id). Each page queries the three objects again from that
        second and follows ``nextRecordsUrl`` only as far as the page needs, so
        a cursor never holds a query locator that could expire.
        """
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        since = since.astimezone(UTC)
        after: tuple[datetime, int, str] | None = None
        if cursor:
            after = _decode_cursor(cursor)
        start = after[0] if after else since
        floor = soql_datetime(start.replace(microsecond=0))

        def key(change: CrmChange) -> tuple[datetime, int, str]:
            return (change.occurred_at, _KIND_ORDER[change.kind], change.external_id)

        streams = [
            (
                c
                for c in self._change_stream(kind, floor)
                if (key(c) > after if after else key(c)[0] > since)
            )
            for kind in _KIND_ORDER
        ]
        merged = heapq.merge(*streams, key=key)
        taken = list(itertools.islice(merged, self.changes_page_size + 1))
        page = taken[: self.changes_page_size]
        more = len(taken) > self.changes_page_size
        return ChangePage(changes=page, cursor=_encode_cursor(key(page[-1])) if more else None)

    # -- deals (the pipeline) ----------------------------------------------------------

    def deals_since(self, since: datetime, cursor: str | None = None) -> DealPage:
        """Opportunities modified after ``since``, oldest first, with history and roles.

        The cursor is the last opportunity returned (its LastModifiedDate and Id,
        as for :meth:`changes_since`); each page queries again from that second.
        """
        op = "deals_since"
        since = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)
        after = _decode_cursor(cursor)[::2] if cursor else None
        start = after[0] if after else since
        soql = (
            f"SELECT {_DEAL_FIELDS} FROM Opportunity WHERE LastModifiedDate >= "
            f"{soql_datetime(start.replace(microsecond=0))} ORDER BY LastModifiedDate, Id"
        )

        def key(r: dict[str, Any]) -> tuple[datetime, str]:
            return parse_sf_datetime(str(r["LastModifiedDate"])), str(r["Id"])

        fresh = (
            r for r in self.query(soql, operation=op)
            if (key(r) > after if after else key(r)[0] > since)
        )  # fmt: skip
        taken = list(itertools.islice(fresh, self.changes_page_size + 1))
        rows = taken[: self.changes_page_size]
        ids = [str(r["Id"]) for r in rows]
        history: dict[str, list[tuple[str, datetime]]] = {}
        roles: dict[str, list[tuple[str, str | None, str | None]]] = {}
        for part in _in_list(ids):
            for h in self.query(
                "SELECT OpportunityId, StageName, CreatedDate FROM OpportunityHistory "
                f"WHERE OpportunityId IN ({part}) ORDER BY CreatedDate",
                operation=op,
            ):
                if h.get("StageName"):
                    history.setdefault(str(h["OpportunityId"]), []).append(
                        (str(h["StageName"]), parse_sf_datetime(str(h["CreatedDate"])))
                    )
            for c in self.query(
                "SELECT OpportunityId, ContactId, Role, Contact.Email FROM OpportunityContactRole "
                f"WHERE OpportunityId IN ({part})",
                operation=op,
            ):
                email = (c.get("Contact") or {}).get("Email")
                roles.setdefault(str(c["OpportunityId"]), []).append(
                    (str(c["ContactId"]), str(email).lower() if email else None, c.get("Role"))
                )
        deals, changes, contacts = [], [], []
        for r in rows:
            deal_id = str(r["Id"])
            stages = sorted(history.get(deal_id, []), key=lambda s: s[1])
            # Consecutive rows of one stage (an amount edit) are not stage changes.
            entered = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1][0] != s[0]]
            changes += [StageChange(deal_id, stage, at) for stage, at in entered]
            outcome = None
            if r.get("IsClosed"):
                outcome = DealOutcome.WON if r.get("IsWon") else DealOutcome.LOST
            website = (r.get("Account") or {}).get("Website")
            close = r.get("CloseDate")
            deals.append(
                Deal(
                    deal_id=deal_id,
                    source=self.name,
                    account_domain=domain_key(str(website)) if website else None,
                    owner_email=((r.get("Owner") or {}).get("Email") or "").lower() or None,
                    amount=float(r.get("Amount") or 0),
                    currency=self.deal_currency,
                    stage=str(r.get("StageName") or ""),
                    created_at=parse_sf_datetime(str(r["CreatedDate"])),
                    close_date=datetime.fromisoformat(str(close)).date() if close else None,
                    closed_at=(entered[-1][1] if entered else key(r)[0]) if outcome else None,
                    outcome=outcome,
                    name=r.get("Name"),
                )
            )
            contacts += [
                DealContact(deal_id, email, role_from_label(role), contact_id)
                for contact_id, email, role in roles.get(deal_id, [])
            ]
        more = len(taken) > self.changes_page_size
        last = key(rows[-1]) if rows else None
        return DealPage(
            deals,
            changes,
            contacts,
            _encode_cursor((last[0], 0, last[1])) if more and last else None,
            max((key(r)[0] for r in rows), default=None),
        )


_DEAL_FIELDS = (
    "Id, Name, StageName, Amount, CloseDate, CreatedDate, LastModifiedDate, IsClosed, IsWon, "
    "Account.Website, Owner.Email"
)


def _encode_cursor(key: tuple[datetime, int, str]) -> str:
    raw = json.dumps({"t": key[0].isoformat(), "k": key[1], "i": key[2]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return (datetime.fromisoformat(data["t"]).astimezone(UTC), int(data["k"]), str(data["i"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise FatalError(
            f"not a Salesforce changes cursor: {cursor!r:.80}",
            connector=CONNECTOR,
            operation="changes_since",
        ) from exc
