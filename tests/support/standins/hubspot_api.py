"""A HubSpot CRM API stand-in on 127.0.0.1: the endpoints ``HubspotCrm`` uses.

Serves, with HubSpot's request and response shapes
(https://developers.hubspot.com/docs/api/crm/understanding-the-crm):

* ``POST /crm/v3/objects/{type}`` create (with ``associations``),
  ``GET|PATCH /crm/v3/objects/{type}/{id}``, ``POST .../batch/read``,
  ``POST .../batch/upsert`` (``idProperty`` must be a unique property:
  ``email`` on contacts, ``touchflow_key`` on notes/calls/emails/tasks),
  ``POST .../search`` (filterGroups, EQ/NEQ/GT/GTE/LT/LTE/IN/HAS_PROPERTY,
  sorts, ``after`` paging; pages hold at most ``page_size`` results) for
  contacts, companies, deals, notes, calls, emails, tasks, meetings;
* ``PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{id}`` and
  ``POST /crm/v4/associations/{from}/{to}/batch/read``;
* ``GET /crm/v3/owners`` (``limit``/``after`` paging, ``page_size`` per page);
* ``GET /crm/v3/properties/{objectType}/{propertyName}``: a property definition
  (``name``, ``label``, ``type``, ``fieldType``, ``groupName``,
  ``hasUniqueValue``, ``hubspotDefined``, ...) or 404 ``OBJECT_NOT_FOUND``. The
  unique properties (``email``, ``touchflow_key``) exist from the start;
  :meth:`HubspotStandin.drop_field` removes one (an account not set up yet), and
  a batch upsert keyed on a property that is not there is refused, as HubSpot does.

Auth: ``Authorization: Bearer <token>``; errors are
``{"status": "error", "message", "correlationId", "category"}``. Rate limit: a
10-second window of ``rate_limit`` requests, reported on every answer with
``X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds`` (and the
``-Secondly`` pair); past it, 429 with ``errorType: RATE_LIMIT`` and
``policyName: TEN_SECONDLY_ROLLING``. Test controls: :class:`CrmStandin`.

Run it: ``python -m tests.support.standins.hubspot_api --port 8091``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support.standins.crm_base import HttpStandin, RecordKind, Request, StandinError
from touchflow.domain.crm import ChangeKind

__all__ = ["DEFAULT_TOKEN", "HubspotStandin", "main"]

DEFAULT_TOKEN = "pat-na1-standin-token"
ACTIVITY_TYPES = ("notes", "calls", "emails", "tasks")
OBJECT_TYPES = ("contacts", "companies", "deals", "meetings", *ACTIVITY_TYPES)
UNIQUE = {"contacts": ("email",), **{t: ("touchflow_key",) for t in ACTIVITY_TYPES}}
_SINGULAR = {
    "contact": "contacts",
    "company": "companies",
    "deal": "deals",
    "meeting": "meetings",
    "note": "notes",
    "call": "calls",
    "email": "emails",
    "task": "tasks",
}
_KIND_TYPES: dict[str, tuple[str, ...]] = {
    "person": ("contacts",),
    "company": ("companies",),
    "deal": ("deals",),
    "activity": ACTIVITY_TYPES,
}
_DEFAULT_PROPS = ("hs_object_id", "createdate", "lastmodifieddate")
BATCH_LIMIT = 100
SEARCH_LIMIT = 200


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _instant(value: Any) -> float | None:
    """Epoch seconds from epoch milliseconds or an ISO string; None otherwise."""
    if value is None or value == "":
        return None
    text = str(value)
    if re.fullmatch(r"-?\d+", text):
        return int(text) / 1000
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _type(name: str) -> str:
    t = _SINGULAR.get(name, name)
    if t not in OBJECT_TYPES:
        raise StandinError(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")
    return t


class HubspotStandin(HttpStandin):
    """HubSpot's CRM v3/v4 endpoints in memory, over real HTTP. Thread-safe."""

    vendor = "hubspot"

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 2,
        rate_limit: int = 10_000,
        window_s: float = 10.0,
        timeout_hold_s: float = 1.5,
    ) -> None:
        super().__init__(
            credentials=token,
            host=host,
            port=port,
            rate_limit=rate_limit,
            window_s=window_s,
            timeout_hold_s=timeout_hold_s,
        )
        self.page_size = page_size
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        # (from type, from id, to type, to id, association type id), both directions.
        self.associations: set[tuple[str, str, str, str, int]] = set()
        # User-defined association labels ("Decision maker"), by (from type, id, to type, id).
        self.labels: dict[tuple[str, str, str, str], str] = {}
        # Indexes, as the real service has: lookups stay O(1) however many records
        # a benchmark creates (a linear scan made the stand-in the bottleneck).
        self._linked: set[tuple[str, str, str, str]] = set()  # associations without type id
        self._type_of: dict[str, str] = {}  # object id -> type
        self._unique: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # UNIQUE values
        self.owners: list[dict[str, Any]] = []
        # Property definitions by object type: the ones upserts key on (HubSpot's own
        # ``email``, the account's custom ``touchflow_key``).
        self.properties: dict[str, dict[str, dict[str, Any]]] = {
            t: {name: _property(t, name) for name in UNIQUE.get(t, ())} for t in OBJECT_TYPES
        }
        self._next_id = 1001
        self._next_owner = 70001

    # -- CrmStandin --------------------------------------------------------------

    def count(self, kind: RecordKind) -> int:
        with self.lock:
            if kind == "association":
                return sum(
                    1 for a in self.associations if a[0] == "contacts" and a[2] == "companies"
                )
            return sum(len(self.objects[t]) for t in _KIND_TYPES[kind])

    def seed_owner(self, email: str, name: str) -> str:
        first, _, last = name.partition(" ")
        with self.lock:
            owner_id = str(self._next_owner)
            self._next_owner += 1
            now = _iso(datetime.now(UTC))
            self.owners.append(
                {
                    "id": owner_id,
                    "email": email,
                    "type": "PERSON",
                    "firstName": first,
                    "lastName": last,
                    "userId": int(owner_id) + 1_000_000,
                    "createdAt": now,
                    "updatedAt": now,
                    "archived": False,
                }
            )
        return owner_id

    def add_change(
        self,
        kind: ChangeKind,
        person_email: str,
        *,
        at: datetime,
        owner_id: str | None = None,
    ) -> str:
        with self.lock:
            contact = self._find("contacts", "email", person_email.lower())
            if contact is None:
                contact = self._create("contacts", {"email": person_email.lower()}, at=at)
            props = {"hubspot_owner_id": owner_id} if owner_id else {}
            if kind == "meeting_booked":
                meeting = self._create(
                    "meetings",
                    {"hs_meeting_title": "Intro call", "hs_timestamp": _iso(at), **props},
                    at=at,
                )
                self._associate("meetings", meeting["id"], "contacts", contact["id"], 200)
                return str(meeting["id"])
            if kind == "deal_created":
                deal = self._create(
                    "deals", {"dealname": f"Deal for {person_email}", **props}, at=at
                )
                self._associate("deals", deal["id"], "contacts", contact["id"], 3)
                return str(deal["id"])
            if not owner_id:
                raise ValueError("owner_changed needs owner_id")
            self._update(contact, {"hubspot_owner_id": owner_id}, at=at)
            return f"{contact['id']}:{owner_id}:{int(at.timestamp() * 1000)}"

    def record(self, kind: RecordKind, id: str) -> dict[str, Any]:
        with self.lock:
            if kind == "association":
                raise KeyError("associations have no record")
            for t in _KIND_TYPES[kind]:
                if id in self.objects[t]:
                    obj = self.objects[t][id]
                    linked = {
                        to: sorted(
                            {a[3] for a in self.associations if a[:2] == (t, id) and a[2] == to}
                        )
                        for to in ("contacts", "companies")
                    }
                    return {"id": id, "type": t, **obj["properties"], "associations": linked}
        raise KeyError(f"no {kind} {id}")

    def add_pipeline_deal(
        self,
        stage: str,
        *,
        at: datetime,
        amount: float = 10_000.0,
        currency: str = "USD",
        domain: str | None = None,
        owner_email: str | None = None,
        name: str | None = None,
        close_date: Any = None,
        contacts: Any = (),
    ) -> str:
        """A deal created at ``at`` in ``stage`` (a dealstage id), its company and labelled
        contacts (``(email, label)``), as a rep would make it in HubSpot."""
        with self.lock:
            props = {"dealname": name or "Deal", "amount": str(amount), "dealstage": stage,
                     "deal_currency_code": currency, "pipeline": "default",
                     "hs_is_closed": "false", "hs_is_closed_won": "false"}  # fmt: skip
            if close_date is not None:
                props["closedate"] = f"{close_date.isoformat()}T00:00:00.000Z"
            if owner_email:
                owner = next((o for o in self.owners if o["email"] == owner_email), None)
                props["hubspot_owner_id"] = (
                    owner["id"] if owner else self.seed_owner(owner_email, "Rep")
                )
            deal = self._create("deals", props, at=at)
            if domain:
                company = self._find("companies", "domain", domain) or self._create(
                    "companies", {"domain": domain, "name": domain}, at=at
                )
                self._associate("deals", deal["id"], "companies", company["id"], 5)
            for email, label in contacts:
                contact = self._find("contacts", "email", email) or self._create(
                    "contacts", {"email": email}, at=at
                )
                self._associate("deals", deal["id"], "contacts", contact["id"], 3)
                if label:
                    self.labels[("deals", deal["id"], "contacts", contact["id"])] = label
            return str(deal["id"])

    def move_deal(self, deal_id: str, stage: str, *, at: datetime, outcome: Any = None) -> None:
        """Move a deal to ``stage`` at ``at``; ``outcome`` won/lost closes it."""
        with self.lock:
            props = {"dealstage": stage}
            if outcome is not None:
                props["hs_is_closed"] = "true"
                props["hs_is_closed_won"] = "true" if str(outcome) == "won" else "false"
            self._update(self.objects["deals"][deal_id], props, at=at)

    def drop_field(self, object_type: str, name: str) -> None:
        """Delete a property definition (an account where it was never created)."""
        with self.lock:
            self.properties[_type(object_type)].pop(name, None)

    # -- vendor shapes -------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.credentials}"

    def default_message(self, status: int) -> tuple[str, str]:
        if status == 401:
            return (
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        if status == 429:
            return ("You have reached your ten_secondly_rolling limit.", "RATE_LIMIT")
        if status >= 500:
            return ("internal error", "INTERNAL_ERROR")
        return super().default_message(status)

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": code or "VALIDATION_ERROR",
        }
        if status == 429:
            body = {
                "status": "error",
                "message": message,
                "errorType": "RATE_LIMIT",
                "correlationId": body["correlationId"],
                "policyName": "TEN_SECONDLY_ROLLING",
            }
        return body

    def limit_headers(self, remaining: int, reset_s: float) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_s * 1000)),
            "X-HubSpot-RateLimit-Secondly": str(max(1, int(self.rate_limit / self.window_s))),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(
                max(0, min(remaining, int(self.rate_limit / self.window_s)))
            ),
        }

    # -- routing -----------------------------------------------------------------

    def route(self, request: Request) -> tuple[int, Any]:
        m, p = request.method, request.path.rstrip("/")
        if m == "GET" and p == "/crm/v3/owners":
            return 200, self._owners(request)
        if (match := re.fullmatch(r"/crm/v3/properties/(\w+)/(\w+)", p)) and m == "GET":
            found = self.properties[_type(match[1])].get(match[2])
            if found is None:
                raise StandinError(
                    404,
                    f"Unable to find property {match[2]} for object type {match[1]}",
                    "OBJECT_NOT_FOUND",
                )
            return 200, found
        if match := re.fullmatch(
            r"/crm/v4/objects/(\w+)/(\d+)/associations/default/(\w+)/(\d+)", p
        ):
            if m != "PUT":
                raise StandinError(405, "Method not allowed", "METHOD_NOT_ALLOWED")
            return 200, self._associate_default(*match.groups())
        if (
            match := re.fullmatch(r"/crm/v4/associations/(\w+)/(\w+)/batch/read", p)
        ) and m == "POST":
            return 200, self._association_read(_type(match[1]), _type(match[2]), request.body)
        if match := re.fullmatch(r"/crm/v3/objects/(\w+)(?:/([\w]+))?(?:/(\w+))?", p):
            t = _type(match[1])
            second, third = match[2], match[3]
            body = request.body if isinstance(request.body, dict) else {}
            if second is None and m == "POST":
                return 201, self._public(self._create_from_body(t, body))
            if second == "search" and m == "POST":
                return 200, self._search(t, body)
            if second == "batch" and third == "upsert" and m == "POST":
                return 200, self._batch_upsert(t, body)
            if second == "batch" and third == "read" and m == "POST":
                return 200, self._batch_read(t, body)
            if second is not None and third is None and m in ("GET", "PATCH"):
                obj = self.objects[t].get(second)
                if obj is None:
                    raise StandinError(
                        404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND"
                    )
                if m == "PATCH":
                    self._update(obj, self._properties(body))
                return 200, self._public(obj, self._wanted(request.arg("properties")))
        raise StandinError(404, f"No route for {m} {p}", "NOT_FOUND")

    # -- objects -------------------------------------------------------------------

    def _properties(self, body: dict[str, Any]) -> dict[str, str]:
        props = body.get("properties")
        if not isinstance(props, dict):
            raise StandinError(
                400, "Invalid input JSON: properties is required", "VALIDATION_ERROR"
            )
        return {str(k): "" if v is None else str(v) for k, v in props.items()}

    def _create(
        self, t: str, props: dict[str, str], *, at: datetime | None = None
    ) -> dict[str, Any]:
        for unique in UNIQUE.get(t, ()):
            value = props.get(unique)
            if value and self._find(t, unique, value) is not None:
                raise StandinError(
                    409,
                    f"Object already exists. Existing ID: {self._find(t, unique, value)['id']}",
                    "CONFLICT",
                )
        now = _iso(at or datetime.now(UTC))
        obj_id = str(self._next_id)
        self._next_id += 1
        if t == "contacts" and props.get("email"):
            props["email"] = props["email"].lower()
        base = {
            "hs_object_id": obj_id,
            "createdate": now,
            "hs_createdate": now,
            "lastmodifieddate": now,
            "hs_lastmodifieddate": now,
        }
        obj = {"id": obj_id, "properties": {**base}, "createdAt": now, "updatedAt": now}
        self.objects[t][obj_id] = obj
        self._type_of[obj_id] = t
        self._update(obj, props, at=at, created=True)
        return obj

    def _update(
        self,
        obj: dict[str, Any],
        props: dict[str, str],
        *,
        at: datetime | None = None,
        created: bool = False,
    ) -> None:
        now = _iso(at or datetime.now(UTC))
        current = obj["properties"]
        owner = props.get("hubspot_owner_id")
        if owner is not None and owner != current.get("hubspot_owner_id", ""):
            if owner and owner not in {o["id"] for o in self.owners}:
                raise StandinError(
                    400,
                    f'Property values were not valid: "{owner}" is not a valid owner id',
                    "VALIDATION_ERROR",
                )
            current["hubspot_owner_assigneddate"] = now
        t = self._type_of.get(obj["id"], "")
        for prop in UNIQUE.get(t, ()):
            if prop in props and props[prop] != current.get(prop):
                index = self._unique.setdefault((t, prop), {})
                index.pop(current.get(prop) or "", None)
                if props[prop]:
                    index[props[prop]] = obj
        for name, value in props.items():
            if value != current.get(name):
                # HubSpot keeps every version of a property (propertiesWithHistory).
                obj.setdefault("history", {}).setdefault(name, []).append(
                    {"value": value, "timestamp": now, "sourceType": "API"}
                )
        current.update(props)
        if not created:
            current["lastmodifieddate"] = current["hs_lastmodifieddate"] = now
            obj["updatedAt"] = now

    def _find(self, t: str, prop: str, value: str) -> dict[str, Any] | None:
        if prop in UNIQUE.get(t, ()):
            return self._unique.get((t, prop), {}).get(value)
        for obj in self.objects[t].values():
            if obj["properties"].get(prop) == value:
                return obj
        return None

    def _wanted(self, spec: Any) -> list[str] | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            return [s for s in spec.split(",") if s]
        return [str(s) for s in spec]

    def _public(self, obj: dict[str, Any], wanted: list[str] | None = None) -> dict[str, Any]:
        props = obj["properties"]
        names = list(_DEFAULT_PROPS) + [w for w in (wanted or []) if w not in _DEFAULT_PROPS]
        if wanted is None:
            names = list(props)
        return {
            "id": obj["id"],
            "properties": {n: props.get(n) for n in names},
            "createdAt": obj["createdAt"],
            "updatedAt": obj["updatedAt"],
            "archived": False,
        }

    def _create_from_body(self, t: str, body: dict[str, Any]) -> dict[str, Any]:
        props = self._properties(body)
        assocs = body.get("associations") or []
        targets = []
        for a in assocs:
            to_id = str((a.get("to") or {}).get("id", ""))
            types = a.get("types") or []
            if not types:
                raise StandinError(400, "association types are required", "VALIDATION_ERROR")
            type_id = int(types[0].get("associationTypeId", 0))
            to_type = _ASSOC_TARGET.get((t, type_id))
            if to_type is None or to_id not in self.objects[to_type]:
                raise StandinError(
                    400, f"Invalid association: {t} -> {to_id} (type {type_id})", "VALIDATION_ERROR"
                )
            targets.append((to_type, to_id, type_id))
        obj = self._create(t, props)
        for to_type, to_id, type_id in targets:
            self._associate(t, obj["id"], to_type, to_id, type_id)
        return obj

    def _batch_upsert(self, t: str, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise StandinError(400, "Invalid input JSON: inputs is required", "VALIDATION_ERROR")
        if len(inputs) > BATCH_LIMIT:
            raise StandinError(
                400, f"Batch input exceeds the limit of {BATCH_LIMIT}", "VALIDATION_ERROR"
            )
        keys = [
            str(i.get("id", "")).lower() if i.get("idProperty") == "email" else str(i.get("id", ""))
            for i in inputs
        ]
        if len(set(keys)) != len(keys):
            raise StandinError(400, "Duplicate IDs found in batch input", "VALIDATION_ERROR")
        results = []
        for item, key in zip(inputs, keys, strict=True):
            id_prop = item.get("idProperty")
            defined = self.properties[t].get(str(id_prop))
            if id_prop not in UNIQUE.get(t, ()) or not defined or not defined["hasUniqueValue"]:
                raise StandinError(
                    400, f"{id_prop} is not a unique identifier property of {t}", "VALIDATION_ERROR"
                )
            props = self._properties(item)
            props[id_prop] = key
            existing = self._find(t, id_prop, key)
            if existing is None:
                obj, new = self._create(t, props), True
            else:
                self._update(existing, props)
                obj, new = existing, False
            results.append({**self._public(obj), "new": new})
        now = _iso(datetime.now(UTC))
        return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}

    def _batch_read(self, t: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = self._wanted(body.get("properties") or [])
        with_history = self._wanted(body.get("propertiesWithHistory") or [])
        results = []
        for item in body.get("inputs") or []:
            obj = self.objects[t].get(str(item.get("id")))
            if obj is not None:
                found = self._public(obj, wanted)
                if with_history:  # newest first, as HubSpot answers
                    history = obj.get("history") or {}
                    found["propertiesWithHistory"] = {
                        n: list(reversed(history.get(n, []))) for n in with_history
                    }
                results.append(found)
        now = _iso(datetime.now(UTC))
        return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}

    def _search(self, t: str, body: dict[str, Any]) -> dict[str, Any]:
        limit = int(body.get("limit") or 10)
        if limit > SEARCH_LIMIT:
            raise StandinError(400, f"limit must be at most {SEARCH_LIMIT}", "VALIDATION_ERROR")
        groups = body.get("filterGroups") or []
        hits = [
            o
            for o in self.objects[t].values()
            if not groups or any(self._matches(o, g) for g in groups)
        ]
        for sort in reversed(body.get("sorts") or []):
            if isinstance(sort, str):
                name, desc = sort.lstrip("-"), sort.startswith("-")
            else:
                name, desc = sort.get("propertyName", ""), sort.get("direction") == "DESCENDING"
            hits.sort(
                key=lambda o, n=name: (_instant(o["properties"].get(n)) or 0, int(o["id"])),
                reverse=desc,
            )
        if not body.get("sorts"):
            hits.sort(key=lambda o: int(o["id"]))
        start = int(body.get("after") or 0)
        size = min(limit, self.page_size)
        page = hits[start : start + size]
        wanted = self._wanted(body.get("properties") or [])
        out: dict[str, Any] = {
            "total": len(hits),
            "results": [self._public(o, wanted) for o in page],
        }
        if start + size < len(hits):
            out["paging"] = {"next": {"after": str(start + size)}}
        return out

    def _matches(self, obj: dict[str, Any], group: dict[str, Any]) -> bool:
        props = obj["properties"]
        for f in group.get("filters") or []:
            name, op, value = f.get("propertyName"), f.get("operator"), f.get("value")
            have = props.get(name)
            if op == "HAS_PROPERTY":
                ok = bool(have)
            elif op == "NOT_HAS_PROPERTY":
                ok = not have
            elif op == "EQ":
                ok = have is not None and str(have).lower() == str(value).lower()
            elif op == "NEQ":
                ok = have is None or str(have).lower() != str(value).lower()
            elif op == "IN":
                ok = have is not None and str(have).lower() in {
                    str(v).lower() for v in f.get("values") or []
                }
            elif op in ("GT", "GTE", "LT", "LTE"):
                a, b = _instant(have), _instant(value)
                if a is None or b is None:
                    ok = False
                else:
                    ok = {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]
            else:
                raise StandinError(400, f"Unsupported operator {op}", "VALIDATION_ERROR")
            if not ok:
                return False
        return True

    # -- associations ----------------------------------------------------------------

    def _associate(self, ft: str, fid: str, tt: str, tid: str, type_id: int) -> None:
        self.associations.add((ft, fid, tt, tid, type_id))
        self.associations.add((tt, tid, ft, fid, _INVERSE.get(type_id, type_id)))
        self._linked.update(((ft, fid, tt, tid), (tt, tid, ft, fid)))

    def _associate_default(self, ft: str, fid: str, tt: str, tid: str) -> dict[str, Any]:
        ft, tt = _type(ft), _type(tt)
        for t, i in ((ft, fid), (tt, tid)):
            if i not in self.objects[t]:
                raise StandinError(404, f"No {t[:-1]} with ID {i} exists", "OBJECT_NOT_FOUND")
        type_id = _DEFAULT_TYPE.get((ft, tt), 1)
        if (ft, fid, tt, tid) not in self._linked:
            self._associate(ft, fid, tt, tid, type_id)
        return {
            "status": "COMPLETE",
            "results": [
                {
                    "from": {"id": fid},
                    "to": {"id": tid},
                    "associationSpec": {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": type_id,
                    },
                }
            ],
        }

    def _association_read(self, ft: str, tt: str, body: Any) -> dict[str, Any]:
        results = []
        for item in (body or {}).get("inputs") or []:
            fid = str(item.get("id"))
            to = [
                {
                    "toObjectId": int(a[3]),
                    "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": a[4], "label": None},
                        *(
                            [{"category": "USER_DEFINED", "typeId": 1001, "label": label}]
                            if (label := self.labels.get(a[:4]))
                            else []
                        ),
                    ],
                }
                for a in sorted(self.associations)
                if a[0] == ft and a[1] == fid and a[2] == tt
            ]
            if to:
                results.append({"from": {"id": fid}, "to": to})
        return {"status": "COMPLETE", "results": results}

    # -- owners --------------------------------------------------------------------

    def _owners(self, request: Request) -> dict[str, Any]:
        limit = request.int_arg("limit", 100)
        start = request.int_arg("after", 0)
        owners = self.owners
        if email := request.arg("email"):
            owners = [o for o in owners if o["email"] == email]
        size = min(limit, self.page_size)
        out: dict[str, Any] = {"results": owners[start : start + size]}
        if start + size < len(owners):
            out["paging"] = {"next": {"after": str(start + size), "link": "?after="}}
        return out


def _property(object_type: str, name: str) -> dict[str, Any]:
    """A text property definition as ``GET /crm/v3/properties/{type}/{name}`` answers it."""
    builtin = name == "email"
    return {
        "name": name,
        "label": "Email" if builtin else "touchflow key",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation" if builtin else f"{object_type[:-1]}information",
        "description": "",
        "options": [],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": True,
        "hidden": False,
        "hubspotDefined": builtin,
        "formField": builtin,
        "archived": False,
        "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-01-01T00:00:00Z",
        "modificationMetadata": {
            "archivable": not builtin,
            "readOnlyDefinition": builtin,
            "readOnlyValue": False,
        },
    }


# Association type ids HubSpot defines (HUBSPOT_DEFINED), by (from, to) type.
_DEFAULT_TYPE = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("notes", "contacts"): 202,
    ("calls", "contacts"): 194,
    ("emails", "contacts"): 198,
    ("tasks", "contacts"): 204,
    ("meetings", "contacts"): 200,
}
_ASSOC_TARGET = {
    **{(k[0], v): k[1] for k, v in _DEFAULT_TYPE.items()},
    ("deals", 5): "companies",
    ("contacts", 1): "companies",
}
_INVERSE = {279: 280, 280: 279, 3: 4, 4: 3, 341: 342, 342: 341, 5: 6, 6: 5, 1: 2, 2: 1}


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted: ``python -m tests.support.standins.hubspot_api``."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8091)
    ap.add_argument("--token", default=DEFAULT_TOKEN)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--owners", type=int, default=3, help="seed this many owners")
    args = ap.parse_args(argv)
    standin = HubspotStandin(
        token=args.token, host=args.host, port=args.port, page_size=args.page_size
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with standin:
        for i in range(args.owners):
            standin.seed_owner(f"owner{i + 1}@example.com", f"Owner {i + 1}")
        print(f"HubSpot stand-in on {standin.base_url} (token {args.token!r})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
