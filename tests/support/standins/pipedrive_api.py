"""A Pipedrive API v1 stand-in on 127.0.0.1: the endpoints ``PipedriveCrm`` uses.

Serves, with Pipedrive's shapes (https://developers.pipedrive.com/docs/api/v1):

* ``GET /v1/persons/search`` (``term``, ``fields=email``, ``exact_match``),
  ``POST /v1/persons``, ``GET|PUT /v1/persons/{id}``,
  ``GET /v1/persons/{id}/activities``;
* ``GET /v1/organizations/search`` (``fields=custom_fields`` or ``name``),
  ``POST /v1/organizations``, ``GET|PUT /v1/organizations/{id}``; the domain
  lives in the custom field :data:`DOMAIN_FIELD_KEY`;
* ``POST /v1/deals``, ``GET /v1/deals/{id}``; ``POST /v1/activities``,
  ``GET /v1/activities/{id}``; ``GET /v1/users``;
* ``GET /v1/organizationFields`` and ``GET /v1/personFields`` (paged): each field
  with ``id``, ``key``, ``name``, ``field_type``, ``edit_flag`` (true for custom
  fields), ``active_flag``; the organization fields include the custom
  :data:`DOMAIN_FIELD_KEY` ("Domain") until :meth:`PipedriveStandin.drop_field`
  removes it;
* ``GET /v1/recents`` (``since_timestamp`` ``YYYY-MM-DD HH:MM:SS`` UTC,
  ``items``): each changed item once, in its current state, oldest change
  first.

Lists page with ``start``/``limit`` and answer
``additional_data.pagination.{start, limit, more_items_in_collection,
next_start}``; pages hold at most ``page_size`` items. Every answer is
``{"success": true, "data": ...}``; errors are ``{"success": false, "error",
"error_info", "errorCode"}``. Auth: ``api_token`` query parameter or
``x-api-token`` header. Rate limit: ``rate_limit`` requests per ``window_s``
(Pipedrive's token budget simplified to a request count), reported with
``x-ratelimit-limit/-remaining/-reset`` (seconds to reset); past it, 429.
Test controls: :class:`tests.support.standins.crm_base.CrmStandin`.

Run it: ``python -m tests.support.standins.pipedrive_api --port 8092``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.standins.crm_base import HttpStandin, RecordKind, Request, StandinError
from touchflow.domain.crm import ChangeKind

__all__ = ["DEFAULT_TOKEN", "DOMAIN_FIELD_KEY", "PipedriveStandin", "main"]

DEFAULT_TOKEN = "standin-pipedrive-api-token"
# Pipedrive custom field keys are 40 hex characters.
DOMAIN_FIELD_KEY = "7f3c2a9e1b4d5c6f8a0b1c2d3e4f5a6b7c8d9e0f"
_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
_TYPES = ("call", "meeting", "task", "deadline", "email", "lunch")


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


class PipedriveStandin(HttpStandin):
    """Pipedrive's v1 endpoints in memory, over real HTTP. Thread-safe."""

    vendor = "pipedrive"

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 2,
        rate_limit: int = 10_000,
        window_s: float = 2.0,
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
        self.persons: dict[int, dict[str, Any]] = {}
        self.orgs: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.activities: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        # GET /v1/deals/{id}/flow (dealChange rows, oldest first) and /participants.
        self.deal_flow: dict[int, list[dict[str, Any]]] = {}
        self.participants: dict[int, list[int]] = {}
        self._next = {"person": 1, "org": 1, "deal": 1, "activity": 1, "user": 9001}
        # Time of each item's last change, for /v1/recents: (item, id) -> datetime.
        self._changed: dict[tuple[str, int], datetime] = {}
        self.company_id = 4242
        # Field definitions: a few of Pipedrive's own, and the custom domain field.
        self.fields: dict[str, list[dict[str, Any]]] = {
            "organization": [
                _field(1, "name", "Name", "varchar"),
                _field(2, "owner_id", "Owner", "user"),
                _field(3, "address", "Address", "address"),
                _field(4, DOMAIN_FIELD_KEY, "Domain", "varchar", custom=True),
            ],
            "person": [
                _field(11, "name", "Name", "varchar"),
                _field(12, "email", "Email", "varchar"),
                _field(13, "phone", "Phone", "phone"),
                _field(14, "owner_id", "Owner", "user"),
                _field(15, "org_id", "Organization", "org"),
            ],
        }

    # -- CrmStandin --------------------------------------------------------------

    def count(self, kind: RecordKind) -> int:
        with self.lock:
            if kind == "person":
                return len(self.persons)
            if kind == "company":
                return len(self.orgs)
            if kind == "deal":
                return len(self.deals)
            if kind == "activity":
                return sum(1 for a in self.activities.values() if a["type"] != "meeting")
            return sum(1 for p in self.persons.values() if p["org_id"] is not None)

    def seed_owner(self, email: str, name: str) -> str:
        with self.lock:
            user_id = self._take("user")
            self.users[user_id] = {
                "id": user_id,
                "name": name,
                "email": email,
                "active_flag": True,
                "is_admin": 0,
                "role_id": 1,
                "created": _ts(datetime.now(UTC)),
            }
            return str(user_id)

    def add_change(
        self,
        kind: ChangeKind,
        person_email: str,
        *,
        at: datetime,
        owner_id: str | None = None,
    ) -> str:
        with self.lock:
            person = self._person_by_email(person_email.lower())
            if person is None:
                # Created a moment before the change: a creation is not an owner change.
                person = self._create_person(
                    {"name": person_email, "email": [person_email.lower()]},
                    at=at - timedelta(seconds=1),
                )
            if kind == "meeting_booked":
                activity = self._create_activity(
                    {
                        "subject": "Intro meeting",
                        "type": "meeting",
                        "person_id": person["id"],
                        "user_id": int(owner_id) if owner_id else None,
                        "due_date": at.strftime("%Y-%m-%d"),
                    },
                    at=at,
                )
                return f"activity:{activity['id']}"
            if kind == "deal_created":
                deal = self._create_deal(
                    {
                        "title": f"Deal for {person_email}",
                        "person_id": person["id"],
                        "user_id": int(owner_id) if owner_id else None,
                    },
                    at=at,
                )
                return f"deal:{deal['id']}"
            if not owner_id:
                raise ValueError("owner_changed needs owner_id")
            self._update_person(person, {"owner_id": int(owner_id)}, at=at)
            return f"person:{person['id']}:{owner_id}"

    def record(self, kind: RecordKind, id: str) -> dict[str, Any]:
        table = {
            "person": self.persons,
            "company": self.orgs,
            "deal": self.deals,
            "activity": self.activities,
        }[kind]
        with self.lock:
            return dict(table[int(id)])

    # -- vendor shapes -----------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        token = request.arg("api_token") or request.headers.get("x-api-token")
        return token == self.credentials

    def default_message(self, status: int) -> tuple[str, str]:
        if status == 401:
            return ("unauthorized access", "401")
        if status == 429:
            return ("Rate limit has been exceeded", "429")
        if status >= 500:
            return ("Internal server error", str(status))
        return super().default_message(status)

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        return {
            "success": False,
            "error": message,
            "error_info": _INFO,
            "data": None,
            "additional_data": None,
            "errorCode": int(code) if code and code.isdigit() else status,
        }

    def limit_headers(self, remaining: int, reset_s: float) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(max(1, round(reset_s))),
            "x-daily-requests-left": "10000",
        }

    # -- routing -----------------------------------------------------------------

    def route(self, request: Request) -> tuple[int, Any]:
        m, p = request.method, request.path.rstrip("/")
        body = request.body if isinstance(request.body, dict) else {}
        if p == "/v1/persons/search" and m == "GET":
            return self._search(request, self.persons, self._person_match, self._person_hit)
        if p == "/v1/organizations/search" and m == "GET":
            return self._search(request, self.orgs, self._org_match, self._org_hit)
        if p == "/v1/persons" and m == "POST":
            return 201, _ok(self._public_person(self._create_person(body)))
        if p == "/v1/organizations" and m == "POST":
            return 201, _ok(self._create_org(body))
        if p == "/v1/deals" and m == "POST":
            return 201, _ok(self._public_deal(self._create_deal(body)))
        if p == "/v1/activities" and m == "POST":
            return 201, _ok(self._create_activity(body))
        if p == "/v1/users" and m == "GET":
            return 200, self._page(request, list(self.users.values()))
        if p in ("/v1/organizationFields", "/v1/personFields") and m == "GET":
            kind = "organization" if p == "/v1/organizationFields" else "person"
            return 200, self._page(request, list(self.fields[kind]))
        if p == "/v1/recents" and m == "GET":
            return 200, self._recents(request)
        if (match := re.fullmatch(r"/v1/deals/(\d+)/(flow|participants)", p)) and m == "GET":
            deal = self._get(self.deals, int(match[1]), "Deal")
            if match[2] == "flow":  # newest first, as Pipedrive lists the flow
                return 200, self._page(request, list(reversed(self.deal_flow.get(deal["id"], []))))
            people = [
                {"id": n, "person_id": {**self._public_deal_person(pid), "value": pid},
                 "active_flag": True}
                for n, pid in enumerate(self.participants.get(deal["id"], []), start=1)
            ]  # fmt: skip
            return 200, self._page(request, people)
        if match := re.fullmatch(r"/v1/persons/(\d+)/activities", p):
            person = self._get(self.persons, int(match[1]), "Person")
            items = [a for a in self.activities.values() if a["person_id"] == person["id"]]
            return 200, self._page(request, items)
        if match := re.fullmatch(r"/v1/(persons|organizations|deals|activities)/(\d+)", p):
            kind, item_id = match[1], int(match[2])
            if kind == "persons":
                person = self._get(self.persons, item_id, "Person")
                if m == "PUT":
                    self._update_person(person, body)
                return 200, _ok(self._public_person(person))
            if kind == "organizations":
                org = self._get(self.orgs, item_id, "Organization")
                if m == "PUT":
                    self._update_org(org, body)
                return 200, _ok(org)
            if kind == "deals":
                return 200, _ok(self._public_deal(self._get(self.deals, item_id, "Deal")))
            return 200, _ok(self._get(self.activities, item_id, "Activity"))
        raise StandinError(404, "Unknown method .", "404")

    # -- records -----------------------------------------------------------------

    def _take(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] += 1
        return value

    def _get(self, table: dict[int, dict[str, Any]], item_id: int, label: str) -> dict[str, Any]:
        if item_id not in table:
            raise StandinError(404, f"{label} not found", "404")
        return table[item_id]

    def _touch(self, item: str, item_id: int, at: datetime | None) -> str:
        when = at or datetime.now(UTC)
        self._changed[(item, item_id)] = when
        return _ts(when)

    def _user(self, value: Any) -> int | None:
        if value in (None, ""):
            return None
        user_id = int(value)
        if user_id not in self.users:
            raise StandinError(400, f"User {user_id} not found", "400")
        return user_id

    def _person_by_email(self, email: str) -> dict[str, Any] | None:
        for person in self.persons.values():
            if email in person["emails"]:
                return person
        return None

    def _create_person(self, body: dict[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
        if not body.get("name"):
            raise StandinError(400, "Name must be given.", "400")
        person_id = self._take("person")
        now = self._touch("person", person_id, at)
        person = {
            "id": person_id,
            "company_id": self.company_id,
            "name": "",
            "emails": [],
            "phones": [],
            "job_title": None,
            "org_id": None,
            "owner_id": None,
            "add_time": now,
            "update_time": now,
            "active_flag": True,
        }
        self.persons[person_id] = person
        self._update_person(person, body, at=at, created=True)
        return person

    def _update_person(
        self,
        person: dict[str, Any],
        body: dict[str, Any],
        *,
        at: datetime | None = None,
        created: bool = False,
    ) -> None:
        if body.get("name"):
            person["name"] = str(body["name"])
        if "email" in body:
            person["emails"] = [
                str(e["value"] if isinstance(e, dict) else e).lower() for e in body["email"] or []
            ]
        if "phone" in body:
            person["phones"] = [
                str(e["value"] if isinstance(e, dict) else e) for e in body["phone"] or []
            ]
        if "job_title" in body:
            person["job_title"] = body["job_title"]
        if "org_id" in body:
            org_id = body["org_id"]
            if org_id is not None:
                self._get(self.orgs, int(org_id), "Organization")
            person["org_id"] = None if org_id is None else int(org_id)
        if "owner_id" in body:
            person["owner_id"] = self._user(body["owner_id"])
        if not created:
            person["update_time"] = self._touch("person", person["id"], at)

    def _public_person(self, person: dict[str, Any]) -> dict[str, Any]:
        owner = self.users.get(person["owner_id"] or -1)
        org = self.orgs.get(person["org_id"] or -1)
        emails = person["emails"]
        return {
            "id": person["id"],
            "company_id": person["company_id"],
            "owner_id": (
                {
                    "id": owner["id"],
                    "name": owner["name"],
                    "email": owner["email"],
                    "value": owner["id"],
                }
                if owner
                else None
            ),
            "org_id": (
                {"name": org["name"], "owner_id": org["owner_id"], "value": org["id"]}
                if org
                else None
            ),
            "name": person["name"],
            "job_title": person["job_title"],
            "email": [
                {"label": "work", "value": e, "primary": i == 0} for i, e in enumerate(emails)
            ],
            "primary_email": emails[0] if emails else None,
            "phone": [
                {"label": "work", "value": v, "primary": i == 0}
                for i, v in enumerate(person["phones"])
            ],
            "add_time": person["add_time"],
            "update_time": person["update_time"],
            "active_flag": True,
        }

    def _create_org(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("name"):
            raise StandinError(400, "Name must be given.", "400")
        org_id = self._take("org")
        now = self._touch("organization", org_id, None)
        org = {
            "id": org_id,
            "company_id": self.company_id,
            "name": "",
            "owner_id": None,
            DOMAIN_FIELD_KEY: None,
            "add_time": now,
            "update_time": now,
            "active_flag": True,
        }
        self.orgs[org_id] = org
        self._update_org(org, body)
        return org

    def _update_org(self, org: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key == "owner_id":
                org["owner_id"] = self._user(value)
            elif key == "name" and value:
                org["name"] = str(value)
            elif re.fullmatch(r"[0-9a-f]{40}", key) or key in ("address", "industry"):
                org[key] = value
        org["update_time"] = self._touch("organization", org["id"], None)

    def _create_deal(self, body: dict[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
        if not body.get("title"):
            raise StandinError(400, "Title must be given.", "400")
        person_id = body.get("person_id")
        if person_id is not None:
            self._get(self.persons, int(person_id), "Person")
        org_id = body.get("org_id")
        if org_id is not None:
            self._get(self.orgs, int(org_id), "Organization")
        deal_id = self._take("deal")
        now = self._touch("deal", deal_id, at)
        deal = {
            "id": deal_id,
            "title": str(body["title"]),
            "value": float(body.get("value") or 0),
            "currency": body.get("currency") or "USD",
            "person_id": None if person_id is None else int(person_id),
            "org_id": None if org_id is None else int(org_id),
            "user_id": self._user(body.get("user_id")),
            "stage_id": int(body.get("stage_id") or 1),
            "status": "open",
            "won_time": None,
            "lost_time": None,
            "close_time": None,
            "expected_close_date": None,
            "add_time": now,
            "update_time": now,
        }
        self.deals[deal_id] = deal
        return deal

    def _public_deal_person(self, person_id: int) -> dict[str, Any]:
        public = self._public_person(self.persons[person_id])
        return {"name": public["name"], "email": public["email"], "phone": public["phone"]}

    def _log_deal_change(
        self, deal: dict[str, Any], key: str, old: Any, new: Any, at: datetime
    ) -> None:
        rows = self.deal_flow.setdefault(deal["id"], [])
        stamp = _ts(at)
        rows.append({
            "object": "dealChange", "timestamp": stamp,
            "data": {"id": len(rows) + 1, "item_id": deal["id"], "field_key": key,
                     "old_value": None if old is None else str(old),
                     "new_value": None if new is None else str(new), "log_time": stamp},
        })  # fmt: skip

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
        """A deal added at ``at`` in stage ``stage`` (a stage id), its organization (the
        domain in the custom domain field) and participants (``(email, _)``: Pipedrive
        has no participant roles)."""
        with self.lock:
            org_id = None
            if domain:
                org_id = self._create_org({"name": domain, DOMAIN_FIELD_KEY: domain})["id"]
            people = []
            for email, _ in contacts:
                person = self._person_by_email(email) or self._create_person(
                    {"name": email.split("@")[0], "email": [email]}, at=at
                )
                people.append(person["id"])
            deal = self._create_deal(
                {"title": name or "Deal", "value": amount, "currency": currency,
                 "stage_id": int(stage), "org_id": org_id,
                 "person_id": people[0] if people else None},
                at=at,
            )  # fmt: skip
            deal["expected_close_date"] = close_date.isoformat() if close_date else None
            self.participants[deal["id"]] = people
            self._log_deal_change(deal, "add_time", None, _ts(at), at)
            return str(deal["id"])

    def move_deal(self, deal_id: str, stage: str, *, at: datetime, outcome: Any = None) -> None:
        """Move a deal to stage ``stage`` at ``at``; ``outcome`` won/lost sets its status."""
        with self.lock:
            deal = self.deals[int(deal_id)]
            if int(stage) != deal["stage_id"]:
                self._log_deal_change(deal, "stage_id", deal["stage_id"], int(stage), at)
                deal["stage_id"] = int(stage)
            if outcome is not None:
                status = str(outcome)
                self._log_deal_change(deal, "status", deal["status"], status, at)
                deal["status"] = status
                deal[f"{status}_time"] = deal["close_time"] = _ts(at)
            deal["update_time"] = self._touch("deal", deal["id"], at)

    def _public_deal(self, deal: dict[str, Any]) -> dict[str, Any]:
        person = self.persons.get(deal["person_id"] or -1)
        out = dict(deal)
        if person is not None:
            public = self._public_person(person)
            out["person_id"] = {
                "active_flag": True,
                "name": public["name"],
                "email": public["email"],
                "phone": public["phone"],
                "value": person["id"],
            }
        if deal["user_id"] is not None:
            user = self.users[deal["user_id"]]
            out["user_id"] = {"id": user["id"], "name": user["name"], "email": user["email"],
                              "value": user["id"]}  # fmt: skip
        return out

    def _create_activity(
        self, body: dict[str, Any], *, at: datetime | None = None
    ) -> dict[str, Any]:
        kind = body.get("type") or "task"
        if kind not in _TYPES:
            raise StandinError(400, f"Activity type {kind} not found", "400")
        person_id = body.get("person_id")
        if person_id is not None:
            self._get(self.persons, int(person_id), "Person")
        activity_id = self._take("activity")
        now = self._touch("activity", activity_id, at)
        activity = {
            "id": activity_id,
            "company_id": self.company_id,
            "user_id": self._user(body.get("user_id")),
            "done": bool(body.get("done")),
            "type": kind,
            "subject": body.get("subject") or kind.capitalize(),
            "note": body.get("note"),
            "due_date": body.get("due_date"),
            "due_time": body.get("due_time") or "",
            "duration": body.get("duration") or "",
            "person_id": None if person_id is None else int(person_id),
            "deal_id": body.get("deal_id"),
            "org_id": body.get("org_id"),
            "add_time": now,
            "update_time": now,
            "active_flag": True,
        }
        self.activities[activity_id] = activity
        return activity

    def drop_field(self, item: str, key: str) -> None:
        """Delete a custom field (``item``: organization or person), as if never created."""
        with self.lock:
            self.fields[item] = [f for f in self.fields[item] if f["key"] != key]

    # -- lists ---------------------------------------------------------------------

    def _page(self, request: Request, items: list[Any]) -> dict[str, Any]:
        start = request.int_arg("start", 0)
        limit = min(request.int_arg("limit", 100), self.page_size)
        page = items[start : start + limit]
        more = start + limit < len(items)
        pagination: dict[str, Any] = {
            "start": start,
            "limit": limit,
            "more_items_in_collection": more,
        }
        if more:
            pagination["next_start"] = start + limit
        return {
            "success": True,
            "data": page or None,
            "additional_data": {"pagination": pagination},
        }

    def _search(self, request: Request, table: Any, match: Any, hit: Any) -> tuple[int, Any]:
        term = (request.arg("term") or "").strip()
        if len(term) < 2:
            raise StandinError(400, "term must be at least 2 characters long", "400")
        exact = request.arg("exact_match") in ("true", "1")
        fields = set((request.arg("fields") or "").split(",")) - {""}
        items = [
            {"result_score": 1.0, "item": hit(row)}
            for row in table.values()
            if match(row, term.lower(), exact, fields)
        ]
        page = self._page(request, items)
        page["data"] = {"items": page["data"] or []}
        return 200, page

    @staticmethod
    def _hit_text(value: str, term: str, exact: bool) -> bool:
        value = value.lower()
        return value == term if exact else term in value

    def _person_match(self, p: dict[str, Any], term: str, exact: bool, fields: set[str]) -> bool:
        fields = fields or {"name", "email", "phone"}
        texts = ([p["name"]] if "name" in fields else []) + (
            p["emails"] if "email" in fields else []
        )
        return any(self._hit_text(t, term, exact) for t in texts)

    def _person_hit(self, p: dict[str, Any]) -> dict[str, Any]:
        org = self.orgs.get(p["org_id"] or -1)
        return {
            "id": p["id"],
            "type": "person",
            "name": p["name"],
            "phones": p["phones"],
            "emails": p["emails"],
            "primary_email": p["emails"][0] if p["emails"] else None,
            "visible_to": 3,
            "owner": {"id": p["owner_id"]},
            "organization": {"id": org["id"], "name": org["name"]} if org else None,
            "custom_fields": [],
            "notes": [],
            "update_time": p["update_time"],
        }

    def _org_match(self, o: dict[str, Any], term: str, exact: bool, fields: set[str]) -> bool:
        fields = fields or {"name", "custom_fields"}
        texts = ([o["name"]] if "name" in fields else []) + (
            [str(v) for k, v in o.items() if re.fullmatch(r"[0-9a-f]{40}", k) and v]
            if "custom_fields" in fields
            else []
        )
        return any(self._hit_text(t, term, exact) for t in texts)

    def _org_hit(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": o["id"],
            "type": "organization",
            "name": o["name"],
            "address": None,
            "visible_to": 3,
            "owner": {"id": o["owner_id"]},
            "custom_fields": [
                str(v) for k, v in o.items() if re.fullmatch(r"[0-9a-f]{40}", k) and v
            ],
            "notes": [],
        }

    def _recents(self, request: Request) -> dict[str, Any]:
        since_text = request.arg("since_timestamp")
        if not since_text:
            raise StandinError(400, "since_timestamp is required", "400")
        try:
            since = _parse_ts(since_text)
        except ValueError as exc:
            raise StandinError(
                400, "since_timestamp must be in format YYYY-MM-DD HH:MM:SS", "400"
            ) from exc
        wanted = set((request.arg("items") or "activity,deal,person,organization").split(","))
        tables = {
            "person": (self.persons, self._public_person),
            "deal": (self.deals, self._public_deal),
            "activity": (self.activities, dict),
            "organization": (self.orgs, dict),
        }
        changed = sorted(
            ((when, item, item_id) for (item, item_id), when in self._changed.items()),
            key=lambda t: (t[0], t[1], t[2]),
        )
        rows = [
            {"item": item, "id": item_id, "data": tables[item][1](tables[item][0][item_id])}
            for when, item, item_id in changed
            if item in wanted and item in tables and when >= since
        ]
        page = self._page(request, rows)
        page["data"] = page["data"] or []
        page["additional_data"]["since_timestamp"] = since_text
        last = page["data"][-1]["data"].get("update_time") if page["data"] else None
        page["additional_data"]["last_timestamp_on_page"] = last
        return page


def _ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def _field(
    field_id: int, key: str, name: str, field_type: str, *, custom: bool = False
) -> dict[str, Any]:
    """A field definition as ``GET /v1/organizationFields`` lists it."""
    return {
        "id": field_id,
        "key": key,
        "name": name,
        "field_type": field_type,
        "order_nr": field_id,
        "add_time": "2024-01-01 00:00:00",
        "update_time": "2024-01-01 00:00:00",
        "active_flag": True,
        "edit_flag": custom,
        "index_visible_flag": True,
        "details_visible_flag": True,
        "add_visible_flag": True,
        "important_flag": False,
        "bulk_edit_allowed": True,
        "searchable_flag": custom,
        "filtering_allowed": True,
        "sortable_flag": True,
        "mandatory_flag": False,
    }


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted: ``python -m tests.support.standins.pipedrive_api``."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8092)
    ap.add_argument("--token", default=DEFAULT_TOKEN)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--users", type=int, default=3, help="seed this many users")
    args = ap.parse_args(argv)
    standin = PipedriveStandin(
        token=args.token, host=args.host, port=args.port, page_size=args.page_size
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with standin:
        for i in range(args.users):
            standin.seed_owner(f"user{i + 1}@example.com", f"User {i + 1}")
        print(
            f"Pipedrive stand-in on {standin.base_url} (token {args.token!r}, "
            f"domain field {DOMAIN_FIELD_KEY})",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
