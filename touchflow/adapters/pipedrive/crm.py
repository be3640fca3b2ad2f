"""Pipedrive as touchflow's CRM, through the Pipedrive API v1 over httpx.

Talks to (https://developers.pipedrive.com/docs/api/v1), authenticated with the
``x-api-token`` header (the token stays out of URLs and access logs):

* people: ``GET /v1/persons/search?term=<email>&fields=email&exact_match=true``
  then ``PUT /v1/persons/{id}`` or ``POST /v1/persons``. v1 has no batch upsert:
  one search and one write per person.
* companies: Pipedrive organizations have no domain field. With
  ``org_domain_field`` (the 40-character key of a custom organization field
  holding the domain) an organization is found with
  ``GET /v1/organizations/search?term=<domain>&fields=custom_fields&exact_match=true``
  and the domain is written to that field. Without it, organizations are
  matched on their exact name (``CrmCompany.name``, else the domain): the
  only stable key left.
* link person to organization: ``PUT /v1/persons/{id}`` with ``org_id``.
* deals: ``POST /v1/deals`` (``person_id``, ``org_id``, ``user_id``; ``stage_id``
  when ``CrmDeal.stage`` is numeric, else the pipeline's first stage).
* owner: ``PUT /v1/persons/{id}`` with ``owner_id``; users from ``GET /v1/users``
  (followed across pages when ``additional_data.pagination`` says there are more).
* activities: ``POST /v1/activities`` marked done, with the touch key in the
  note as ``[touchflow:<key>]``. Pipedrive has no idempotency key and activities
  cannot be searched by content, so before creating, the person's activities
  (``GET /v1/persons/{id}/activities``, paged) are scanned for the marker; keys
  seen by this instance are remembered. Two workers logging the same key at the
  same instant could still both create it.
* setup check: with ``org_domain_field``, ``GET /v1/organizationFields``
  (paged) must list a field with that ``key``; activities and people need no
  custom field.
* changes: ``GET /v1/recents?since_timestamp=...&items=activity,deal,person``
  paged with ``start``/``limit`` (the cursor is ``next_start``). Recents lists
  each item changed since the timestamp once, in its current state; touchflow
  keeps: activities of type ``meeting`` added after ``since`` (meeting_booked),
  deals added after ``since`` (deal_created), and persons updated (not created)
  after ``since`` who have an owner (owner_changed). Recents does not say *what*
  changed on a person, so its current owner is reported with
  ``external_id = "<person id>:<owner id>"``: an edit that kept the owner
  repeats an id already seen, which the caller deduplicates. Pipedrive numbers
  each item type on its own, so every ``external_id`` is prefixed with the type
  (``activity:12``, ``deal:12``, ``person:7:3``).
* deals (:meth:`PipedriveCrm.deals_since`, the pipeline's deal pull): deals in
  ``GET /v1/recents?items=deal`` updated after ``since`` (the cursor is
  ``next_start``), in their current state (``stage_id``, ``status`` open / won /
  lost with ``won_time``/``lost_time``, ``value``, ``currency``, ``add_time``,
  ``expected_close_date``, ``user_id.email``); per deal its stage history from
  ``GET /v1/deals/{id}/flow`` (``dealChange`` rows whose ``field_key`` is
  ``stage_id``: ``old_value`` -> ``new_value`` at ``log_time``; the first stage
  is the first change's ``old_value``, entered at ``add_time``), its people from
  ``GET /v1/deals/{id}/participants`` (Pipedrive has no participant roles: the
  committee role comes from their title) and, with ``org_domain_field``, the
  organization's domain (``GET /v1/organizations/{id}``). ``stage_id`` values are
  numbers: ``config/pipeline.yaml`` maps them. Three calls a deal: fine for a
  sync every few minutes, slow for a first backfill of many thousands.

Limits: token-based budgets per company (daily), plus a burst limit per rolling
2-second window; every answer carries ``x-ratelimit-limit``,
``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (seconds), a 429 answers
past it. Search terms need at least 2 characters; lists page with ``start`` and
``limit`` (at most 500). Errors are
``{"success": false, "error", "error_info", "errorCode"}``.
(https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from touchflow.adapters._http.client import PIPEDRIVE_QUOTA, CrmHttp, RetryPolicy, pipedrive_error
from touchflow.adapters.closing import ClosesOnExit
from touchflow.domain.committee import role_from_label
from touchflow.domain.crm import (
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
from touchflow.errors import FatalError

__all__ = ["PipedriveCrm", "activity_marker"]

CONNECTOR = "pipedrive"
_ACTIVITY_TYPE = {
    "email": "email",
    "call": "call",
    "task": "task",
    "note": "task",
    "sms": "task",
    "linkedin": "task",
}


def activity_marker(external_key: str) -> str:
    """The text in an activity's note that carries touchflow's key."""
    return f"[touchflow:{external_key}]"


def _ts(dt: datetime) -> str:
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _ref(value: Any) -> int | None:
    """An id that v1 gives either as a number or as an object with ``value``."""
    if isinstance(value, dict):
        value = value.get("value", value.get("id"))
    return None if value in (None, "") else int(value)


def _emails(value: Any) -> list[str]:
    out = []
    for e in value or []:
        text = e.get("value") if isinstance(e, dict) else e
        if text:
            out.append(str(text).lower())
    return out


class PipedriveCrm(ClosesOnExit):
    """:class:`touchflow.domain.crm.CrmConnector` for Pipedrive (API token)."""

    name = "pipedrive"

    def __init__(
        self,
        api_token: str,
        *,
        base_url: str = "https://api.pipedrive.com",
        company_domain: str | None = None,
        org_domain_field: str | None = None,
        page_size: int = 100,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if company_domain and base_url == "https://api.pipedrive.com":
            base_url = f"https://{company_domain}.pipedrive.com"
        self.org_domain_field = org_domain_field
        self.page_size = min(page_size, 500)
        self._keys: dict[str, str] = {}  # activity keys this instance has seen
        self.http = CrmHttp(
            connector=CONNECTOR,
            base_url=base_url,
            headers={"x-api-token": api_token},
            error_parser=pipedrive_error,
            quota=PIPEDRIVE_QUOTA,
            retry=retry,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"PipedriveCrm(base_url={str(self.http._client.base_url)!r})"

    def _call(self, method: str, path: str, operation: str, **kw: Any) -> Any:
        answer = self.http.request(method, path, operation=operation, **kw)
        if not isinstance(answer, dict) or answer.get("success") is False:
            raise FatalError(
                f"unexpected answer {str(answer)[:200]}", connector=CONNECTOR, operation=operation
            )
        return answer

    def _pages(self, path: str, operation: str, params: dict[str, Any]) -> list[Any]:
        items: list[Any] = []
        start = 0
        while True:
            answer = self._call(
                "GET", path, operation, params={**params, "start": start, "limit": self.page_size}
            )
            data = answer.get("data")
            if isinstance(data, dict):  # search answers wrap the list in "items"
                data = data.get("items")
            items.extend(data or [])
            pagination = (answer.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                return items
            start = int(pagination.get("next_start") or start + len(data or []))

    # -- people and organizations ---------------------------------------------------

    def upsert_people(self, people: Sequence[CrmPerson]) -> list[str]:
        ids: dict[str, str] = {}
        out = []
        for p in people:
            email = p.email.strip().lower()
            if email not in ids:
                ids[email] = self._upsert_person(email, p)
            out.append(ids[email])
        return out

    def _upsert_person(self, email: str, p: CrmPerson) -> str:
        found = self._call(
            "GET",
            "/v1/persons/search",
            "upsert_people",
            params={"term": email, "fields": "email", "exact_match": "true", "limit": 1},
        )
        items = (found.get("data") or {}).get("items") or []
        body: dict[str, Any] = {}
        name = " ".join(x for x in (p.first_name, p.last_name) if x)
        if name:
            body["name"] = name
        if p.phone:
            body["phone"] = [{"value": p.phone, "primary": True, "label": "work"}]
        if p.title:
            body["job_title"] = p.title
        if p.owner_id:
            body["owner_id"] = int(p.owner_id)
        if items:
            person_id = str(items[0]["item"]["id"])
            if body:
                self._call("PUT", f"/v1/persons/{person_id}", "upsert_people", json=body)
            return person_id
        body.setdefault("name", email)
        body["email"] = [{"value": email, "primary": True, "label": "work"}]
        created = self._call("POST", "/v1/persons", "upsert_people", json=body, once=True)
        return str(created["data"]["id"])

    def upsert_company(self, company: CrmCompany) -> str:
        domain = company.domain.strip().lower()
        if self.org_domain_field:
            params = {"term": domain, "fields": "custom_fields", "exact_match": "true"}
        else:
            params = {"term": company.name or domain, "fields": "name", "exact_match": "true"}
        found = self._call(
            "GET", "/v1/organizations/search", "upsert_company", params={**params, "limit": 1}
        )
        items = (found.get("data") or {}).get("items") or []
        body: dict[str, Any] = {}
        if company.name:
            body["name"] = company.name
        if company.owner_id:
            body["owner_id"] = int(company.owner_id)
        if self.org_domain_field:
            body[self.org_domain_field] = domain
        if items:
            org_id = str(items[0]["item"]["id"])
            self._call("PUT", f"/v1/organizations/{org_id}", "upsert_company", json=body)
            return org_id
        body.setdefault("name", domain)
        created = self._call("POST", "/v1/organizations", "upsert_company", json=body, once=True)
        return str(created["data"]["id"])

    def associate(self, person_id: str, company_id: str) -> None:
        self._call("PUT", f"/v1/persons/{person_id}", "associate", json={"org_id": int(company_id)})

    # -- deals, owners, activities ---------------------------------------------------

    def create_deal(self, deal: CrmDeal) -> str:
        body: dict[str, Any] = {"title": deal.name, "person_id": int(deal.person_id)}
        if deal.company_id:
            body["org_id"] = int(deal.company_id)
        if deal.owner_id:
            body["user_id"] = int(deal.owner_id)
        if deal.amount is not None:
            body["value"] = deal.amount
        if deal.stage and deal.stage.isdigit():
            body["stage_id"] = int(deal.stage)
        created = self._call("POST", "/v1/deals", "create_deal", json=body, once=True)
        return str(created["data"]["id"])

    def assign_owner(self, person_id: str, owner_id: str) -> None:
        self._call(
            "PUT", f"/v1/persons/{person_id}", "assign_owner", json={"owner_id": int(owner_id)}
        )

    def log_activity(self, activity: CrmActivity) -> str:
        key = activity.external_key
        if key in self._keys:
            return self._keys[key]
        marker = activity_marker(key)
        for existing in self._pages(
            f"/v1/persons/{activity.person_id}/activities", "log_activity", {}
        ):
            if marker in str(existing.get("note") or ""):
                self._keys[key] = str(existing["id"])
                return self._keys[key]
        at = activity.occurred_at
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
        note = (
            activity.body
            if not activity.outcome
            else f"{activity.body}\n\nOutcome: {activity.outcome}"
        )
        body: dict[str, Any] = {
            "subject": activity.subject,
            "type": _ACTIVITY_TYPE[activity.kind],
            "done": 1,
            "due_date": at.strftime("%Y-%m-%d"),
            "due_time": at.strftime("%H:%M"),
            "person_id": int(activity.person_id),
            "note": f"{note}\n\n{marker}",
        }
        if activity.owner_id:
            body["user_id"] = int(activity.owner_id)
        created = self._call("POST", "/v1/activities", "log_activity", json=body, once=True)
        self._keys[key] = str(created["data"]["id"])
        return self._keys[key]

    def list_owners(self) -> list[CrmOwner]:
        return [
            CrmOwner(
                id=str(u["id"]),
                email=str(u.get("email") or ""),
                name=u.get("name"),
                active=bool(u.get("active_flag", True)),
            )
            for u in self._pages("/v1/users", "list_owners", {})
        ]

    # -- changes ---------------------------------------------------------------------

    def check_fields(self) -> list[CrmFieldCheck]:
        """The organization domain field, when one is configured (nothing else is needed)."""
        if not self.org_domain_field:
            return []
        key = self.org_domain_field
        fields = self._pages("/v1/organizationFields", "check_fields", {})
        found = next((f for f in fields if isinstance(f, dict) and f.get("key") == key), None)
        problem = None
        if found is None:
            problem = (
                f"missing: no organization field has the key {key} "
                "(TOUCHFLOW_CRM__PIPEDRIVE_DOMAIN_FIELD); create a text field for the domain "
                "and use its API key"
            )
        elif found.get("active_flag") is False:
            problem = "the field is deactivated"
        return [
            CrmFieldCheck(
                "organization", key, "organizations are matched on the domain", problem=problem
            )
        ]

    def changes_since(self, since: datetime, cursor: str | None = None) -> ChangePage:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        try:
            start = int(cursor) if cursor else 0
        except ValueError as exc:
            raise FatalError(
                f"bad cursor {cursor!r}", connector=CONNECTOR, operation="changes_since"
            ) from exc
        answer = self._call(
            "GET",
            "/v1/recents",
            "changes_since",
            params={
                "since_timestamp": _ts(since),
                "items": "activity,deal,person",
                "start": start,
                "limit": self.page_size,
            },
        )
        emails: dict[int, str | None] = {}
        changes: list[CrmChange] = []
        for row in answer.get("data") or []:
            change = self._change(row.get("item"), row.get("data") or {}, since, emails)
            if change is not None:
                changes.append(change)
        pagination = (answer.get("additional_data") or {}).get("pagination") or {}
        more = pagination.get("more_items_in_collection")
        next_start = pagination.get("next_start")
        next_cursor = str(next_start) if more and next_start is not None else None
        return ChangePage(changes=changes, cursor=next_cursor)

    def _change(
        self, item: Any, data: dict[str, Any], since: datetime, emails: dict[int, str | None]
    ) -> CrmChange | None:
        added = _parse_ts(data.get("add_time"))
        if item == "activity" and data.get("type") == "meeting":
            person_id = _ref(data.get("person_id"))
            if added is None or added <= since or person_id is None:
                return None
            email = self._email(person_id, emails)
            owner = _ref(data.get("user_id"))
            return (
                CrmChange(
                    kind="meeting_booked",
                    person_email=email,
                    occurred_at=added,
                    external_id=f"activity:{data['id']}",
                    owner_id=None if owner is None else str(owner),
                    detail=data.get("subject"),
                )
                if email
                else None
            )
        if item == "deal":
            person_id = _ref(data.get("person_id"))
            if added is None or added <= since or person_id is None:
                return None
            person = data.get("person_id")
            inline = _emails(person.get("email")) if isinstance(person, dict) else []
            email = inline[0] if inline else self._email(person_id, emails)
            owner = _ref(data.get("user_id"))
            return (
                CrmChange(
                    kind="deal_created",
                    person_email=email,
                    occurred_at=added,
                    external_id=f"deal:{data['id']}",
                    owner_id=None if owner is None else str(owner),
                    detail=data.get("title"),
                )
                if email
                else None
            )
        if item == "person":
            updated = _parse_ts(data.get("update_time"))
            owner = _ref(data.get("owner_id"))
            if updated is None or updated <= since or owner is None:
                return None
            if added is not None and updated <= added:
                return None  # a creation, not a change of owner
            found = _emails(data.get("email"))
            email = data.get("primary_email") or (found[0] if found else None)
            if not email:
                return None
            return CrmChange(
                kind="owner_changed",
                person_email=str(email).lower(),
                occurred_at=updated,
                external_id=f"person:{data['id']}:{owner}",
                owner_id=str(owner),
            )
        return None

    # -- deals (the pipeline) ------------------------------------------------------

    def deals_since(self, since: datetime, cursor: str | None = None) -> DealPage:
        op = "deals_since"
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        try:
            start = int(cursor) if cursor else 0
        except ValueError as exc:
            raise FatalError(f"bad cursor {cursor!r}", connector=CONNECTOR, operation=op) from exc
        answer = self._call(
            "GET",
            "/v1/recents",
            op,
            params={"since_timestamp": _ts(since), "items": "deal", "start": start,
                    "limit": self.page_size},
        )  # fmt: skip
        deals, changes, contacts = [], [], []
        latest: datetime | None = None
        domains: dict[int, str | None] = {}
        for row in answer.get("data") or []:
            data = row.get("data") or {}
            updated, added = _parse_ts(data.get("update_time")), _parse_ts(data.get("add_time"))
            if row.get("item") != "deal" or updated is None or added is None or updated <= since:
                continue
            latest = updated if latest is None else max(latest, updated)
            deal_id = str(data["id"])
            stages = self._stage_history(deal_id, added, str(data.get("stage_id") or ""))
            changes += [StageChange(deal_id, stage, at) for stage, at in stages]
            status = data.get("status")
            outcome = {"won": DealOutcome.WON, "lost": DealOutcome.LOST}.get(str(status))
            closed = _parse_ts(data.get(f"{status}_time")) if outcome else None
            owner = data.get("user_id")
            org = _ref(data.get("org_id"))
            expected = data.get("expected_close_date")
            deals.append(
                Deal(
                    deal_id=deal_id,
                    source=self.name,
                    account_domain=self._org_domain(org, domains) if org is not None else None,
                    owner_email=(owner.get("email") or "").lower() or None
                    if isinstance(owner, dict)
                    else None,
                    amount=float(data.get("value") or 0),
                    currency=str(data.get("currency") or "USD").upper(),
                    stage=str(data.get("stage_id") or ""),
                    created_at=added,
                    close_date=datetime.fromisoformat(str(expected)).date() if expected else None,
                    closed_at=closed or (updated if outcome else None),
                    outcome=outcome,
                    name=data.get("title"),
                )
            )
            for p in self._pages(f"/v1/deals/{deal_id}/participants", op, {}):
                person = p.get("person_id") or {}
                emails = _emails(person.get("email")) if isinstance(person, dict) else []
                contacts.append(
                    DealContact(deal_id, emails[0] if emails else None, role_from_label(None),
                                str(_ref(person)) if person else None)
                )  # fmt: skip
        pagination = (answer.get("additional_data") or {}).get("pagination") or {}
        next_start = pagination.get("next_start")
        more = pagination.get("more_items_in_collection") and next_start is not None
        return DealPage(deals, changes, contacts, str(next_start) if more else None, latest)

    def _stage_history(
        self, deal_id: str, added: datetime, current: str
    ) -> list[tuple[str, datetime]]:
        moves = []
        for row in self._pages(f"/v1/deals/{deal_id}/flow", "deals_since", {}):
            data = row.get("data") or {}
            if row.get("object") == "dealChange" and data.get("field_key") == "stage_id":
                at = _parse_ts(data.get("log_time"))
                if at is not None:
                    moves.append((at, str(data.get("old_value") or ""), str(data.get("new_value"))))
        moves.sort()
        first = moves[0][1] if moves and moves[0][1] else current
        return [(first, added)] + [(new, at) for at, _, new in moves]

    def _org_domain(self, org_id: int, cache: dict[int, str | None]) -> str | None:
        if self.org_domain_field is None:
            return None
        if org_id not in cache:
            data = self._call("GET", f"/v1/organizations/{org_id}", "deals_since").get("data")
            value = (data or {}).get(self.org_domain_field)
            cache[org_id] = str(value).lower() if value else None
        return cache[org_id]

    def _email(self, person_id: int, cache: dict[int, str | None]) -> str | None:
        if person_id not in cache:
            try:
                answer = self._call("GET", f"/v1/persons/{person_id}", "changes_since")
            except FatalError as exc:
                if exc.status != 404:
                    raise
                cache[person_id] = None  # deleted since: nobody to react for
            else:
                data = answer.get("data") or {}
                found = _emails(data.get("email"))
                email = data.get("primary_email") or (found[0] if found else None)
                cache[person_id] = str(email).lower() if email else None
        return cache[person_id]

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()
