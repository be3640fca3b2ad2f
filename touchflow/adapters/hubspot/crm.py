"""HubSpot as touchflow's CRM, through the CRM v3/v4 REST API over httpx.

Talks to (https://developers.hubspot.com/docs/api/crm/understanding-the-crm):

* people: ``POST /crm/v3/objects/contacts/batch/upsert`` with ``idProperty:
  email`` (100 per call): one call creates or updates, so a retried batch
  never duplicates a contact. Results come back in no particular order and are
  matched to the input by email.
* companies: ``POST /crm/v3/objects/companies/search`` (``domain EQ``) then
  ``POST /crm/v3/objects/companies`` or ``PATCH .../companies/{id}``; HubSpot's
  ``domain`` is not a unique property, so upsert is search-then-write.
* associations: ``PUT /crm/v4/objects/contact/{id}/associations/default/company/{id}``
  (idempotent).
* deals: ``POST /crm/v3/objects/deals`` with associations to the contact
  (type 3) and company (type 5), pipeline ``default``.
* owners: ``PATCH /crm/v3/objects/contacts/{id}`` (``hubspot_owner_id``);
  ``GET /crm/v3/owners`` paged with ``after``.
* activities: notes, calls, emails and tasks through
  ``POST /crm/v3/objects/{notes|calls|emails|tasks}/batch/upsert`` with
  ``idProperty: touchflow_key``, then the default association to the contact.
  **Setup:** ``touchflow_key`` must exist as a custom property with unique
  values ("Require unique values") on those four objects; the name is the
  ``activity_key_property`` argument. :meth:`HubspotCrm.check_fields` reads each
  with ``GET /crm/v3/properties/{objectType}/{propertyName}`` (404: missing;
  ``hasUniqueValue`` false: unusable as an upsert key).
* changes: three searches, each paged with ``after`` and sorted ascending:
  meetings by ``hs_createdate > since`` (a booking is a meeting created), deals
  by ``createdate > since``, contacts by ``hubspot_owner_assigneddate > since``
  (HubSpot stamps it whenever the owner changes, so no owner history has to be
  kept here). Meetings and deals are mapped to contact emails with
  ``POST /crm/v4/associations/{type}/contacts/batch/read`` and
  ``POST /crm/v3/objects/contacts/batch/read``. The cursor names the search and
  its ``after``: a page never mixes searches.
* deals (:meth:`HubspotCrm.deals_since`, the pipeline's deal pull): a search of
  deals by ``hs_lastmodifieddate > since`` sorted ascending (``dealname``,
  ``amount``, ``deal_currency_code``, ``dealstage``, ``closedate``,
  ``createdate``, ``hubspot_owner_id``, ``hs_is_closed``, ``hs_is_closed_won``),
  then for the page: ``POST /crm/v3/objects/deals/batch/read`` with
  ``propertiesWithHistory: ["dealstage"]`` (every stage the deal entered, with
  its timestamp: the stage history), deal -> contact associations with their
  labels (``POST /crm/v4/associations/deals/contacts/batch/read``; a label such
  as "Decision maker" is the contact's committee role), the contacts' emails,
  the deal -> company association and the company's ``domain``, and the owners'
  emails (``GET /crm/v3/owners``, once per connector). ``dealstage`` values are
  the portal's stage ids (``appointmentscheduled``, ``closedwon``, or numbers in a
  custom pipeline): ``config/pipeline.yaml`` maps them.

Limits: private apps get 100 or 190 requests per rolling 10 seconds depending on
the plan (``X-HubSpot-RateLimit-Max``/``-Remaining``/``-Interval-Milliseconds``
on every answer), search endpoints 5 requests per second, 200 results per
search page and 10,000 per search; batch endpoints take 100 inputs. 429 answers
carry ``errorType: RATE_LIMIT`` and ``policyName``; errors are
``{"status": "error", "message", "correlationId", "category"}``.
(https://developers.hubspot.com/docs/api/usage-details)

Quirks: search is eventually consistent on the real API (a record created a
second ago may not be found yet), which makes company upserts racy under
concurrency; touchflow pushes a company from one worker at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from touchflow.adapters._http.client import HUBSPOT_QUOTA, CrmHttp, RetryPolicy, hubspot_error
from touchflow.adapters.closing import ClosesOnExit
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
from touchflow.errors import FatalError

__all__ = ["HubspotCrm"]

CONNECTOR = "hubspot"
BATCH = 100
_PHASES: tuple[tuple[ChangeKind, str, str], ...] = (
    ("meeting_booked", "meetings", "hs_createdate"),
    ("deal_created", "deals", "createdate"),
    ("owner_changed", "contacts", "hubspot_owner_assigneddate"),
)
_ACTIVITY_OBJECT = {
    "email": "emails",
    "call": "calls",
    "task": "tasks",
    "note": "notes",
    "sms": "notes",
    "linkedin": "notes",
}
# touchflow property names -> HubSpot contact properties; the rest are ignored.
_PERSON_PROPERTIES = {
    "lifecycle_stage": "lifecyclestage",
    "lead_status": "hs_lead_status",
    "city": "city",
    "country": "country",
    "state": "state",
    "linkedin_url": "hs_linkedin_url",
}


# What a deal pull reads (``deal_currency_code`` is set on multi-currency portals).
_DEAL_PROPS = (
    "dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "closedate",
    "createdate", "hs_lastmodifieddate", "hubspot_owner_id", "hs_is_closed", "hs_is_closed_won",
)  # fmt: skip


def _iso(dt: datetime) -> str:
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(dt: datetime) -> str:
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return str(int(dt.timestamp() * 1000))


def _parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _clean(props: dict[str, Any]) -> dict[str, str]:
    """Drop unset values: an upsert must not blank what the CRM already has."""
    return {k: str(v) for k, v in props.items() if v is not None and v != ""}


class HubspotCrm(ClosesOnExit):
    """:class:`~touchflow.domain.crm.CrmConnector` for HubSpot (private-app or OAuth token)."""

    name = "hubspot"

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = "https://api.hubapi.com",
        activity_key_property: str = "touchflow_key",
        deal_pipeline: str = "default",
        deal_stage: str = "appointmentscheduled",
        page_size: int = 100,
        currency: str = "USD",
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.activity_key_property = activity_key_property
        self.deal_pipeline = deal_pipeline
        self.deal_stage = deal_stage
        self.page_size = min(page_size, 200)
        self.currency = currency
        self._owners: dict[str, str] | None = None
        self.http = CrmHttp(
            connector=CONNECTOR,
            base_url=base_url,
            headers={"Authorization": f"Bearer {access_token}"},
            error_parser=hubspot_error,
            quota=HUBSPOT_QUOTA,
            retry=retry,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"HubspotCrm(base_url={str(self.http._client.base_url)!r})"

    # -- people and companies ------------------------------------------------------

    def upsert_people(self, people: Sequence[CrmPerson]) -> list[str]:
        ids: dict[str, str] = {}
        unique: dict[str, CrmPerson] = {}
        for p in people:
            unique[p.email.strip().lower()] = p  # the last one wins, as a re-upsert would
        emails = list(unique)
        for start in range(0, len(emails), BATCH):
            chunk = emails[start : start + BATCH]
            body = {
                "inputs": [
                    {"idProperty": "email", "id": e, "properties": self._person_props(unique[e])}
                    for e in chunk
                ]
            }
            answer = self.http.request(
                "POST",
                "/crm/v3/objects/contacts/batch/upsert",
                operation="upsert_people",
                json=body,
            )
            for result in answer.get("results") or []:
                email = str((result.get("properties") or {}).get("email") or "").lower()
                ids[email] = str(result["id"])
            missing = [e for e in chunk if e not in ids]
            if missing:
                raise FatalError(
                    f"batch upsert returned no id for {missing[:3]}",
                    connector=CONNECTOR,
                    operation="upsert_people",
                )
        return [ids[p.email.strip().lower()] for p in people]

    def _person_props(self, p: CrmPerson) -> dict[str, str]:
        props = {
            "email": p.email.strip().lower(),
            "firstname": p.first_name,
            "lastname": p.last_name,
            "jobtitle": p.title,
            "phone": p.phone,
            "company": p.company,
            "website": p.domain,
            "hubspot_owner_id": p.owner_id,
        }
        for key, value in p.properties.items():
            if key in _PERSON_PROPERTIES:
                props[_PERSON_PROPERTIES[key]] = value
        return _clean(props)

    def upsert_company(self, company: CrmCompany) -> str:
        domain = company.domain.strip().lower()
        props = _clean(
            {
                "domain": domain,
                "name": company.name,
                "industry": company.industry,
                "numberofemployees": company.employees,
                "country": company.country,
                "hubspot_owner_id": company.owner_id,
            }
        )
        found = self._search(
            "companies",
            [{"propertyName": "domain", "operator": "EQ", "value": domain}],
            operation="upsert_company",
            limit=1,
        )
        if found["results"]:
            company_id = str(found["results"][0]["id"])
            self.http.request(
                "PATCH",
                f"/crm/v3/objects/companies/{company_id}",
                operation="upsert_company",
                json={"properties": props},
            )
            return company_id
        created = self.http.request(
            "POST",
            "/crm/v3/objects/companies",
            operation="upsert_company",
            json={"properties": props},
            once=True,  # a retry searches by domain first (see above)
        )
        return str(created["id"])

    def associate(self, person_id: str, company_id: str) -> None:
        self.http.request(
            "PUT",
            f"/crm/v4/objects/contact/{person_id}/associations/default/company/{company_id}",
            operation="associate",
        )

    # -- deals, owners, activities -----------------------------------------------------

    def create_deal(self, deal: CrmDeal) -> str:
        associations = [_assoc(deal.person_id, 3)]
        if deal.company_id:
            associations.append(_assoc(deal.company_id, 5))
        props = _clean(
            {
                "dealname": deal.name,
                "amount": deal.amount,
                "pipeline": self.deal_pipeline,
                "dealstage": deal.stage or self.deal_stage,
                "hubspot_owner_id": deal.owner_id,
            }
        )
        created = self.http.request(
            "POST",
            "/crm/v3/objects/deals",
            operation="create_deal",
            json={"properties": props, "associations": associations},
            once=True,
        )
        return str(created["id"])

    def assign_owner(self, person_id: str, owner_id: str) -> None:
        self.http.request(
            "PATCH",
            f"/crm/v3/objects/contacts/{person_id}",
            operation="assign_owner",
            json={"properties": {"hubspot_owner_id": owner_id}},
        )

    def log_activity(self, activity: CrmActivity) -> str:
        object_type = _ACTIVITY_OBJECT[activity.kind]
        props = self._activity_props(object_type, activity)
        props[self.activity_key_property] = activity.external_key
        answer = self.http.request(
            "POST",
            f"/crm/v3/objects/{object_type}/batch/upsert",
            operation="log_activity",
            json={
                "inputs": [
                    {
                        "idProperty": self.activity_key_property,
                        "id": activity.external_key,
                        "properties": props,
                    }
                ]
            },
        )
        results = answer.get("results") or []
        if not results:
            raise FatalError(
                "batch upsert returned no result", connector=CONNECTOR, operation="log_activity"
            )
        activity_id = str(results[0]["id"])
        self.http.request(
            "PUT",
            f"/crm/v4/objects/{object_type}/{activity_id}/associations/default/contact/"
            f"{activity.person_id}",
            operation="log_activity",
        )
        return activity_id

    def _activity_props(self, object_type: str, a: CrmActivity) -> dict[str, str]:
        text = a.body if not a.outcome else f"{a.body}\n\nOutcome: {a.outcome}"
        common = {"hs_timestamp": _iso(a.occurred_at), "hubspot_owner_id": a.owner_id}
        if object_type == "calls":
            specific = {
                "hs_call_title": a.subject,
                "hs_call_body": text,
                "hs_call_status": "COMPLETED",
            }
        elif object_type == "emails":
            specific = {
                "hs_email_subject": a.subject,
                "hs_email_text": text,
                "hs_email_direction": "EMAIL",
                "hs_email_status": "SENT",
            }
        elif object_type == "tasks":
            specific = {
                "hs_task_subject": a.subject,
                "hs_task_body": text,
                "hs_task_status": "COMPLETED",
            }
        else:
            label = "" if a.kind == "note" else f"[{a.kind}] "
            specific = {"hs_note_body": f"{label}{a.subject}\n\n{text}"}
        return _clean({**common, **specific})

    def list_owners(self) -> list[CrmOwner]:
        owners: list[CrmOwner] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": self.page_size, "archived": "false"}
            if after:
                params["after"] = after
            page = self.http.request(
                "GET", "/crm/v3/owners", operation="list_owners", params=params
            )
            for o in page.get("results") or []:
                name = " ".join(x for x in (o.get("firstName"), o.get("lastName")) if x) or None
                owners.append(
                    CrmOwner(
                        id=str(o["id"]),
                        email=str(o.get("email") or ""),
                        name=name,
                        active=not o.get("archived", False),
                    )
                )
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return owners

    def check_fields(self) -> list[CrmFieldCheck]:
        """The activity key property on notes, calls, emails and tasks: there, and unique."""
        name = self.activity_key_property
        purpose = "activities are upserted on it, so a touch is logged once"
        out = []
        for object_type in ("notes", "calls", "emails", "tasks"):
            try:
                prop = self.http.request(
                    "GET", f"/crm/v3/properties/{object_type}/{name}", operation="check_fields"
                )
            except FatalError as exc:
                if exc.status == 403:  # the token lacks the scope to read property definitions
                    out.append(CrmFieldCheck(object_type, name, purpose,
                                             problem=f"cannot read it: {exc}"))  # fmt: skip
                    continue
                if exc.status != 404:
                    raise
                out.append(
                    CrmFieldCheck(
                        object_type,
                        name,
                        purpose,
                        problem=f"missing: create a single-line text property {name!r} on "
                        f"{object_type} with 'Require unique values'",
                    )
                )
                continue
            unique = bool((prop or {}).get("hasUniqueValue"))
            out.append(
                CrmFieldCheck(
                    object_type,
                    name,
                    purpose,
                    problem=None
                    if unique
                    else "exists but does not require unique values: HubSpot upserts only on "
                    "a unique property",
                )
            )
        return out

    # -- changes ---------------------------------------------------------------------

    def changes_since(self, since: datetime, cursor: str | None = None) -> ChangePage:
        phase, after = 0, None
        if cursor:
            head, _, tail = cursor.partition(":")
            try:
                phase = int(head)
            except ValueError as exc:
                raise FatalError(
                    f"bad cursor {cursor!r}", connector=CONNECTOR, operation="changes_since"
                ) from exc
            after = tail or None
        if not 0 <= phase < len(_PHASES):
            raise FatalError(
                f"bad cursor {cursor!r}", connector=CONNECTOR, operation="changes_since"
            )
        kind, object_type, date_prop = _PHASES[phase]
        wanted = [date_prop, "hubspot_owner_id", "email", "hs_meeting_title", "dealname"]
        body: dict[str, Any] = {
            "filterGroups": [
                {"filters": [{"propertyName": date_prop, "operator": "GT", "value": _ms(since)}]}
            ],
            "sorts": [{"propertyName": date_prop, "direction": "ASCENDING"}],
            "properties": wanted,
            "limit": self.page_size,
        }
        if after:
            body["after"] = after
        page = self.http.request(
            "POST", f"/crm/v3/objects/{object_type}/search", operation="changes_since", json=body
        )
        results = page.get("results") or []
        if object_type == "contacts":
            emails = {str(r["id"]): (r.get("properties") or {}).get("email") for r in results}
        else:
            emails = self._contact_emails(object_type, [str(r["id"]) for r in results])
        changes: list[CrmChange] = []
        for r in results:
            props = r.get("properties") or {}
            email = emails.get(str(r["id"]))
            at = _parse_time(props.get(date_prop))
            if not email or at is None:
                continue  # a meeting or deal with no contact: nobody to react for
            owner = props.get("hubspot_owner_id") or None
            if kind == "owner_changed":
                if not owner:
                    continue
                external_id = f"{r['id']}:{owner}:{int(at.timestamp() * 1000)}"
                detail = None
            else:
                external_id = str(r["id"])
                detail = props.get("hs_meeting_title") or props.get("dealname")
            changes.append(
                CrmChange(
                    kind=kind,
                    person_email=str(email).lower(),
                    occurred_at=at,
                    external_id=external_id,
                    owner_id=owner,
                    detail=detail,
                )
            )
        next_after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if next_after:
            next_cursor: str | None = f"{phase}:{next_after}"
        elif phase + 1 < len(_PHASES):
            next_cursor = f"{phase + 1}:"
        else:
            next_cursor = None
        return ChangePage(changes=changes, cursor=next_cursor)

    # -- deals (the pipeline) ------------------------------------------------------

    def deals_since(self, since: datetime, cursor: str | None = None) -> DealPage:
        op = "deals_since"
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": _ms(since)}
            ]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(_DEAL_PROPS),
            "limit": self.page_size,
        }  # fmt: skip
        if cursor:
            body["after"] = cursor
        page = self.http.request("POST", "/crm/v3/objects/deals/search", operation=op, json=body)
        results = page.get("results") or []
        ids = [str(r["id"]) for r in results]
        history = self._stage_history(ids)
        contact_links = self._links("deals", "contacts", ids)
        company_links = self._links("deals", "companies", ids)
        emails = self._property_of(
            "contacts", "email", sorted({c for links in contact_links.values() for c, _ in links})
        )
        domains = self._property_of(
            "companies", "domain", sorted({c for links in company_links.values() for c, _ in links})
        )
        owners = self._owner_emails() if any(
            (r.get("properties") or {}).get("hubspot_owner_id") for r in results
        ) else {}  # fmt: skip
        deals, changes, contacts = [], [], []
        latest: datetime | None = None
        for r in results:
            deal_id, props = str(r["id"]), r.get("properties") or {}
            created = _parse_time(props.get("createdate")) or _parse_time(r.get("createdAt"))
            modified = _parse_time(props.get("hs_lastmodifieddate"))
            if created is None:
                continue
            if modified is not None:
                latest = modified if latest is None else max(latest, modified)
            stages = history.get(deal_id, [])
            changes += [StageChange(deal_id, stage, at) for stage, at in stages]
            outcome = None
            if str(props.get("hs_is_closed_won")).lower() == "true":
                outcome = DealOutcome.WON
            elif str(props.get("hs_is_closed")).lower() == "true":
                outcome = DealOutcome.LOST
            close = _parse_time(props.get("closedate"))
            closed_at = None
            if outcome is not None:
                closed_at = stages[-1][1] if stages else close or modified
            company = next(iter(company_links.get(deal_id, [])), None)
            deals.append(
                Deal(
                    deal_id=deal_id,
                    source=self.name,
                    account_domain=domains.get(company[0]) if company else None,
                    owner_email=owners.get(str(props.get("hubspot_owner_id") or "")),
                    amount=float(props.get("amount") or 0),
                    currency=(props.get("deal_currency_code") or self.currency).upper(),
                    stage=str(props.get("dealstage") or ""),
                    created_at=created,
                    close_date=close.date() if close else None,
                    closed_at=closed_at,
                    outcome=outcome,
                    name=props.get("dealname") or None,
                )
            )
            for contact_id, label in contact_links.get(deal_id, []):
                contacts.append(
                    DealContact(deal_id, emails.get(contact_id), role_from_label(label), contact_id)
                )
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        return DealPage(deals, changes, contacts, str(after) if after else None, latest)

    def _stage_history(self, ids: list[str]) -> dict[str, list[tuple[str, datetime]]]:
        """Each deal's ``dealstage`` versions, oldest first."""
        if not ids:
            return {}
        answer = self.http.request(
            "POST",
            "/crm/v3/objects/deals/batch/read",
            operation="deals_since",
            json={
                "properties": ["dealstage"],
                "propertiesWithHistory": ["dealstage"],
                "inputs": [{"id": i} for i in ids],
            },
        )
        out: dict[str, list[tuple[str, datetime]]] = {}
        for r in answer.get("results") or []:
            versions = (r.get("propertiesWithHistory") or {}).get("dealstage") or []
            stages = [
                (str(v["value"]), at)
                for v in versions
                if v.get("value") and (at := _parse_time(v.get("timestamp"))) is not None
            ]
            out[str(r["id"])] = sorted(stages, key=lambda s: s[1])
        return out

    def _links(
        self, from_type: str, to_type: str, ids: list[str]
    ) -> dict[str, list[tuple[str, str | None]]]:
        """``from id -> [(to id, first association label or None)]`` (v4 batch read)."""
        if not ids:
            return {}
        answer = self.http.request(
            "POST",
            f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
            operation="deals_since",
            json={"inputs": [{"id": i} for i in ids]},
        )
        out: dict[str, list[tuple[str, str | None]]] = {}
        for r in answer.get("results") or []:
            links = []
            for to in r.get("to") or []:
                labels = [
                    t.get("label") for t in to.get("associationTypes") or [] if t.get("label")
                ]
                links.append((str(to["toObjectId"]), labels[0] if labels else None))
            out[str(r["from"]["id"])] = links
        return out

    def _property_of(self, object_type: str, prop: str, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(ids), BATCH):
            answer = self.http.request(
                "POST",
                f"/crm/v3/objects/{object_type}/batch/read",
                operation="deals_since",
                json={
                    "properties": [prop],
                    "inputs": [{"id": i} for i in ids[start : start + BATCH]],
                },
            )
            for r in answer.get("results") or []:
                value = (r.get("properties") or {}).get(prop)
                if value:
                    out[str(r["id"])] = str(value).lower()
        return out

    def _owner_emails(self) -> dict[str, str]:
        if self._owners is None:
            self._owners = {o.id: o.email.lower() for o in self.list_owners() if o.email}
        return self._owners

    def _contact_emails(self, object_type: str, ids: list[str]) -> dict[str, str]:
        """The first associated contact's email for each meeting/deal id."""
        if not ids:
            return {}
        links = self.http.request(
            "POST",
            f"/crm/v4/associations/{object_type}/contacts/batch/read",
            operation="changes_since",
            json={"inputs": [{"id": i} for i in ids]},
        )
        contact_of: dict[str, str] = {}
        for r in links.get("results") or []:
            to = r.get("to") or []
            if to:
                contact_of[str(r["from"]["id"])] = str(to[0]["toObjectId"])
        if not contact_of:
            return {}
        contacts = self.http.request(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            operation="changes_since",
            json={
                "properties": ["email"],
                "inputs": [{"id": c} for c in sorted(set(contact_of.values()))],
            },
        )
        email_of = {
            str(c["id"]): (c.get("properties") or {}).get("email")
            for c in contacts.get("results") or []
        }
        return {i: e for i, c in contact_of.items() if (e := email_of.get(c))}

    def _search(
        self, object_type: str, filters: list[dict[str, Any]], *, operation: str, limit: int
    ) -> dict[str, Any]:
        return self.http.request(
            "POST",
            f"/crm/v3/objects/{object_type}/search",
            operation=operation,
            json={"filterGroups": [{"filters": filters}], "limit": limit},
        )

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()


def _assoc(to_id: str, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": to_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }
