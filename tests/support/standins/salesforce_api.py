"""A local stand-in for the slice of the Salesforce REST API that SalesforceCrm uses.

Serves, over real HTTP on 127.0.0.1 (a :class:`~tests.support.standins.crm_base.HttpStandin`):

* ``POST /services/oauth2/token``: the client-credentials flow (form body
  ``grant_type=client_credentials&client_id=..&client_secret=..``); a wrong
  client answers 400 ``{"error": "invalid_client", ...}``. The token endpoint
  takes no bearer token and is not subject to :meth:`fail_next`.
* ``GET /services/data/{v}/query?q=SOQL`` and ``GET /services/data/{v}/query/{locator}``:
  results in batches of ``batch_size`` (small, 5 by default, so paging is
  exercised) with ``done``/``nextRecordsUrl``/``totalSize``.
* ``POST /services/data/{v}/sobjects/{Type}/`` (201 ``{"id", "success", "errors"}``),
  ``GET``/``PATCH /services/data/{v}/sobjects/{Type}/{Id}`` (PATCH answers 204).
* ``GET /services/data/{v}/sobjects/{Type}/describe``: the object's ``name``,
  ``label``, ``custom`` and ``fields`` (each with ``name``, ``label``, ``type``,
  ``custom``, ``externalId``, ``unique``, ``nillable``, ``length``); a field
  removed with :meth:`SalesforceStandin.drop_field` is gone from it and from
  every write and query, as in an org where it was never created.
* sObject Collections: ``POST`` (create) and ``PATCH`` (update) of
  ``/services/data/{v}/composite/sobjects`` and ``PATCH
  /services/data/{v}/composite/sobjects/{Type}/{ExternalIdField}`` (upsert),
  at most 200 records, ``allOrNone`` honoured, SaveResults in order.

Objects: Contact, Lead, Account, Opportunity (``IsClosed`` derived from the
stage; ``ContactId`` on create adds a primary OpportunityContactRole), Task,
Event, User (seeded only), ContactHistory / LeadHistory (written when an
OwnerId changes: two rows per change, names and ids, as Salesforce does) and
OpportunityContactRole. Each object knows its fields (plus ``custom_fields``,
by default ``Task.Touchflow_Key__c`` and ``Contact.Touchflow_Email__c``): an
unknown field is 400 INVALID_FIELD, a missing required one
REQUIRED_FIELD_MISSING, a lookup to a record that does not exist
INVALID_CROSS_REFERENCE_KEY, a duplicate in a ``unique_fields`` field
DUPLICATE_VALUE.

The SOQL it understands is a deliberately SMALL subset, enough for the queries
SalesforceCrm sends and no more::

    SELECT field[, field...] FROM Object
      [WHERE cond [AND cond...]]
      [ORDER BY field [ASC|DESC][, ...]]
      [LIMIT n]

    cond  := field (= | != | < | <= | > | >=) literal  |  field IN (literal[, literal...])
    literal := 'string' (backslash escapes) | null | true | false | number | 2024-05-01T10:00:00Z

Fields may be one relationship deep in SELECT (``Who.Email``,
``Contact.Email``: the lookup ``<Name>Id`` is followed). String comparisons
are case-insensitive, as in SOQL. There is no OR, NOT, LIKE, parentheses
around conditions, functions, aggregates, GROUP BY, OFFSET, sub-queries, date
literals (``TODAY``) or semi-joins: such a query is 400 MALFORMED_QUERY, which
tells a connector author at once that the stand-in needs to grow.

Errors use Salesforce's shape ``[{"message", "errorCode", "fields"}]``: an
unknown, expired or revoked token is 401 INVALID_SESSION_ID, a scripted 403
is REQUEST_LIMIT_EXCEEDED ("TotalRequests Limit exceeded."), 500
UNKNOWN_EXCEPTION, 503 SERVER_UNAVAILABLE; :meth:`SalesforceStandin.lock_rows`
makes the next writes fail with UNABLE_TO_LOCK_ROW.

Run one by hand with ``python -m tests.support.standins.salesforce_api --port 8041``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import re
import secrets
import signal
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from tests.support.standins.crm_base import HttpStandin, RecordKind, Request
from touchflow.domain.crm import ChangeKind

__all__ = ["SalesforceStandin", "SoqlError", "main", "parse_soql"]

TOKEN_PATH = "/services/oauth2/token"
MAX_COLLECTION = 200

_PREFIX = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "ContactHistory": "017",
    "LeadHistory": "017",
    "Lead": "00Q",
    "Task": "00T",
    "Event": "00U",
    "OpportunityContactRole": "00K",
    "OpportunityHistory": "008",
}
_SYSTEM = ("Id", "CreatedDate", "LastModifiedDate")
_FIELDS: dict[str, tuple[str, ...]] = {
    "Contact": (
        "FirstName",
        "LastName",
        "Name",
        "Email",
        "Title",
        "Phone",
        "OwnerId",
        "AccountId",
        "LeadSource",
        "Description",
    ),
    "Lead": (
        "FirstName",
        "LastName",
        "Name",
        "Email",
        "Title",
        "Phone",
        "OwnerId",
        "Company",
        "Status",
        "LeadSource",
    ),
    "Account": ("Name", "Website", "Industry", "NumberOfEmployees", "BillingCountry", "OwnerId"),
    "Opportunity": (
        "Name",
        "StageName",
        "CloseDate",
        "Amount",
        "AccountId",
        "ContactId",
        "OwnerId",
        "IsClosed",
        "IsWon",
    ),
    "Task": (
        "Subject",
        "Description",
        "ActivityDate",
        "WhoId",
        "WhatId",
        "Status",
        "Priority",
        "TaskSubtype",
        "CallDisposition",
        "CallType",
        "OwnerId",
        "Type",
    ),
    "Event": ("Subject", "WhoId", "OwnerId", "StartDateTime", "EndDateTime", "DurationInMinutes"),
    "User": ("Email", "Name", "IsActive", "Username"),
    "ContactHistory": ("ContactId", "Field", "DataType", "OldValue", "NewValue"),
    "LeadHistory": ("LeadId", "Field", "DataType", "OldValue", "NewValue"),
    "OpportunityContactRole": ("OpportunityId", "ContactId", "IsPrimary", "Role"),
    # Salesforce writes a row whenever an opportunity's stage (or amount, close date) is set.
    "OpportunityHistory": ("OpportunityId", "StageName", "Amount", "CloseDate"),
}
_REQUIRED = {
    "Contact": ("LastName",),
    "Lead": ("LastName", "Company"),
    "Account": ("Name",),
    "Opportunity": ("Name", "StageName", "CloseDate"),
}
_READ_ONLY = {"Id", "CreatedDate", "LastModifiedDate"}
_DERIVED = {
    ("Contact", "Name"),
    ("Lead", "Name"),
    ("Opportunity", "IsClosed"),
    ("Opportunity", "IsWon"),
}
_CREATE_ONLY = {("Task", "TaskSubtype"), ("Opportunity", "ContactId")}
_WRITABLE_OBJECTS = ("Contact", "Lead", "Account", "Opportunity", "Task", "Event")
# lookup field -> the objects it may point at
_LOOKUPS: dict[str, tuple[str, ...]] = {
    "OwnerId": ("User",),
    "AccountId": ("Account",),
    "ContactId": ("Contact",),
    "LeadId": ("Lead",),
    "WhoId": ("Contact", "Lead"),
    "OpportunityId": ("Opportunity",),
}
_KIND_OBJECT: dict[str, str] = {
    "company": "Account",
    "deal": "Opportunity",
    "activity": "Task",
}
_DEFAULT_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "MALFORMED_REQUEST"),
    401: ("Session expired or invalid", "INVALID_SESSION_ID"),
    403: ("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED"),
    404: ("The requested resource does not exist", "NOT_FOUND"),
    429: ("ConcurrentPerOrgLongTxn Limit exceeded.", "REQUEST_LIMIT_EXCEEDED"),
    500: (
        "An unexpected error occurred. Please include this ErrorId if you contact "
        "support: 1234567890-12345 (-1234567890)",
        "UNKNOWN_EXCEPTION",
    ),
    503: ("Server unavailable", "SERVER_UNAVAILABLE"),
}


def _stamp(when: datetime) -> str:
    """Salesforce's datetime format: ``2024-05-01T10:00:00.000+0000``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def _parse_stamp(value: str) -> datetime:
    text = value[:-1] + "+0000" if value.endswith("Z") else value
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(value)


# -- SOQL subset -------------------------------------------------------------------


class SoqlError(Exception):
    """A query outside the subset or malformed (400 MALFORMED_QUERY, INVALID_FIELD...)."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    | (?P<op>!=|<=|>=|=|<|>)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    value: Any = None


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # = != < <= > >= IN
    value: Any  # str | float | bool | None | datetime | list


@dataclass(frozen=True)
class Soql:
    fields: tuple[str, ...]
    sobject: str
    where: tuple[Condition, ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)
    limit: int | None


def _unescape(literal: str) -> str:
    out: list[str] = []
    chars = iter(literal[1:-1])
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def _tokens(soql: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    text = soql.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SoqlError(f"unexpected token at position {pos}: {text[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "str":
            tokens.append(_Tok("lit", raw, _unescape(raw)))
        elif kind == "dt":
            tokens.append(_Tok("lit", raw, _parse_stamp(raw)))
        elif kind == "num":
            tokens.append(_Tok("lit", raw, float(raw)))
        elif kind == "name" and raw.lower() in ("null", "true", "false"):
            tokens.append(
                _Tok("lit", raw, {"null": None, "true": True, "false": False}[raw.lower()])
            )
        else:
            tokens.append(_Tok(kind, raw))
    return tokens


def parse_soql(soql: str) -> Soql:
    """Parse the supported SOQL subset (see the module docstring) or raise :class:`SoqlError`."""
    toks = _tokens(soql)
    pos = 0

    def peek(word: str | None = None) -> _Tok | None:
        if pos >= len(toks):
            return None
        tok = toks[pos]
        if word is not None and not (tok.kind == "name" and tok.text.upper() == word):
            return None
        return tok

    def take(kind: str | None = None, word: str | None = None, text: str | None = None) -> _Tok:
        nonlocal pos
        if pos >= len(toks):
            raise SoqlError(f"unexpected end of query, expecting {word or text or kind}")
        tok = toks[pos]
        if (
            (kind is not None and tok.kind != kind)
            or (word is not None and tok.text.upper() != word)
            or (text is not None and tok.text != text)
        ):
            raise SoqlError(f"unexpected token {tok.text!r}, expecting {word or text or kind}")
        pos += 1
        return tok

    take("name", "SELECT")
    fields = [take("name").text]
    while peek() is not None and toks[pos].text == ",":
        take("punct", text=",")
        fields.append(take("name").text)
    take("name", "FROM")
    sobject = take("name").text
    where: list[Condition] = []
    if peek("WHERE"):
        take("name", "WHERE")
        while True:
            field = take("name").text
            if peek("IN"):
                take("name", "IN")
                take("punct", text="(")
                values = [take("lit").value]
                while toks[pos].text == ",":
                    take("punct", text=",")
                    values.append(take("lit").value)
                take("punct", text=")")
                where.append(Condition(field, "IN", values))
            else:
                op = take("op").text
                where.append(Condition(field, op, take("lit").value))
            if not peek("AND"):
                break
            take("name", "AND")
    order: list[tuple[str, bool]] = []
    if peek("ORDER"):
        take("name", "ORDER")
        take("name", "BY")
        while True:
            field = take("name").text
            desc = False
            if peek("ASC") or peek("DESC"):
                desc = take("name").text.upper() == "DESC"
            order.append((field, desc))
            if peek() is None or toks[pos].text != ",":
                break
            take("punct", text=",")
    limit = None
    if peek("LIMIT"):
        take("name", "LIMIT")
        limit = int(take("lit").value)
    if pos != len(toks):
        raise SoqlError(f"unexpected token {toks[pos].text!r} (outside the stand-in's subset)")
    return Soql(tuple(fields), sobject, tuple(where), tuple(order), limit)


# -- the stand-in --------------------------------------------------------------------


class _SfError(Exception):
    def __init__(self, status: int, message: str, code: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.fields = list(fields)

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]

    def save_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


class SalesforceStandin(HttpStandin):
    """Salesforce's query, sObject and Collections endpoints on 127.0.0.1, with OAuth.

    Implements :class:`~tests.support.standins.crm_base.CrmStandin`. ``credentials``
    is the access token currently issued; ``client_id``/``client_secret`` are
    what the token endpoint accepts. ``person_object`` is what ``count("person")``
    and :meth:`add_change` use.
    """

    vendor = "salesforce"

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_version: str = "v60.0",
        batch_size: int = 5,
        person_object: Literal["Contact", "Lead"] = "Contact",
        custom_fields: Mapping[str, Sequence[str]] | None = None,
        unique_fields: Mapping[str, Sequence[str]] | None = None,
        api_limit: int = 15_000,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_hold_s: float = 1.5,
    ) -> None:
        super().__init__(
            credentials=secrets.token_urlsafe(24),
            host=host,
            port=port,
            rate_limit=10**9,
            timeout_hold_s=timeout_hold_s,
        )
        self.client_id = client_id or "3MVG9" + secrets.token_hex(12)
        self.client_secret = client_secret or secrets.token_hex(16)
        self.api_version = api_version
        self.batch_size = batch_size
        self.person_object = person_object
        self.api_limit = api_limit
        custom = (
            custom_fields
            if custom_fields is not None
            else {"Task": ["Touchflow_Key__c"], "Contact": ["Touchflow_Email__c"]}
        )
        self._fields = {
            obj: {f.lower(): f for f in (*_SYSTEM, *fields, *custom.get(obj, ()))}
            for obj, fields in _FIELDS.items()
        }
        self._unique = {obj: set(fs) for obj, fs in (unique_fields or {}).items()}
        self._tables: dict[str, dict[str, dict[str, Any]]] = {obj: {} for obj in _FIELDS}
        self._ids = itertools.count(1)
        self._tokens: set[str] = {self.credentials}
        self._locators: dict[str, list[dict[str, Any]]] = {}
        self._locks_pending = 0
        self.api_usage = 0
        self.token_requests = 0
        self.queries: list[str] = []  # every SOQL text received, in order
        self.bodies: list[tuple[str, str, Any]] = []  # (method, path, JSON body) of writes
        self.default_owner = self.seed_owner("integration@standin.test", "Integration User")

    # -- CrmStandin ------------------------------------------------------------------

    def count(self, kind: RecordKind) -> int:
        with self.lock:
            if kind == "person":
                return len(self._tables[self.person_object])
            if kind == "association":
                return sum(1 for r in self._tables["Contact"].values() if r.get("AccountId"))
            return len(self._tables[_KIND_OBJECT[kind]])

    def seed_owner(self, email: str, name: str, *, active: bool = True) -> str:
        with self.lock:
            user = self._insert(
                "User",
                {"Email": email, "Name": name, "IsActive": active, "Username": email},
                validate=False,
            )
            return str(user["Id"])

    def add_change(
        self,
        kind: ChangeKind,
        person_email: str,
        *,
        at: datetime,
        owner_id: str | None = None,
    ) -> str:
        with self.lock:
            person = self._person_for(person_email, at)
            pid = person["Id"]
            extra = {"OwnerId": owner_id} if owner_id else {}
            if kind == "meeting_booked":
                event = self._insert(
                    "Event",
                    {"Subject": "Meeting", "WhoId": pid, "StartDateTime": _stamp(at), **extra},
                    at=at,
                )
                return str(event["Id"])
            if kind == "deal_created":
                fields: dict[str, Any] = {
                    "Name": f"Deal for {person_email}",
                    "StageName": "Prospecting",
                    "CloseDate": at.date().isoformat(),
                    **extra,
                }
                if self.person_object == "Contact":
                    fields["ContactId"] = pid
                return str(self._insert("Opportunity", fields, at=at)["Id"])
            new_owner = owner_id or self.seed_owner(
                f"owner{next(self._ids)}@standin.test", "Seeded Owner"
            )
            return self._change_owner(self.person_object, person, new_owner, at)

    def record(self, kind: RecordKind, id: str) -> dict[str, Any]:
        with self.lock:
            person = kind in ("person", "association")
            obj = self.person_object if person else _KIND_OBJECT[kind]
            found = self._tables[obj].get(id)
            if found is None:
                raise KeyError(f"no {obj} {id}")
            return copy.deepcopy(found)

    # -- more controls ---------------------------------------------------------------

    def expire_token(self) -> None:
        """Revoke every issued token: the next API call is 401 INVALID_SESSION_ID and
        the token endpoint hands out a new one (``credentials`` changes)."""
        with self.lock:
            self._tokens.clear()
            self.credentials = secrets.token_urlsafe(24)

    def lock_rows(self, times: int = 1) -> None:
        """Fail the next ``times`` writes with 400 UNABLE_TO_LOCK_ROW (nothing is written)."""
        with self.lock:
            self._locks_pending += times

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Every record of ``sobject`` (Contact, Task, ContactHistory...), a deep copy."""
        with self.lock:
            return copy.deepcopy(list(self._tables[sobject].values()))

    def insert(self, sobject: str, fields: Mapping[str, Any], *, at: datetime | None = None) -> str:
        """Create a record directly (test set-up, validated like an API create); its Id."""
        with self.lock:
            return str(self._insert(sobject, dict(fields), at=at)["Id"])

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
        """An Opportunity created at ``at`` in ``stage`` (a StageName), with its Account
        (Website = ``domain``) and OpportunityContactRole rows (``(email, Role)``)."""
        with self.lock:
            fields: dict[str, Any] = {
                "Name": name or "Deal", "StageName": stage, "Amount": amount,
                "CloseDate": (close_date or at.date()).isoformat(),
            }  # fmt: skip
            if domain:
                account = self._insert("Account", {"Name": domain, "Website": domain}, at=at)
                fields["AccountId"] = account["Id"]
            if owner_email:
                fields["OwnerId"] = self.seed_owner(owner_email, "Rep")
            opp = self._insert("Opportunity", fields, at=at)
            for email, role in contacts:
                contact = self._person_for(email, at)
                self._insert(
                    "OpportunityContactRole",
                    {"OpportunityId": opp["Id"], "ContactId": contact["Id"],
                     "IsPrimary": False, "Role": role},
                    at=at,
                    validate=False,
                )  # fmt: skip
            return str(opp["Id"])

    def move_deal(self, deal_id: str, stage: str, *, at: datetime, outcome: Any = None) -> None:
        """Set the Opportunity's StageName at ``at`` (a closed stage closes it)."""
        with self.lock:
            record = self._tables["Opportunity"][deal_id]
            record["StageName"] = stage
            record["LastModifiedDate"] = _stamp(at)
            self._derive("Opportunity", record)
            self._stage_history(record, at)

    # -- HttpStandin hooks ------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            return bool(token) and token in self._tokens

    def default_message(self, status: int) -> tuple[str, str]:
        return _DEFAULT_MESSAGES.get(
            status, ("Internal server error" if status >= 500 else "Bad request", "ERROR")
        )

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        return [{"message": message, "errorCode": code or "ERROR", "fields": []}]

    def limit_headers(self, remaining: int, reset_s: float) -> dict[str, str]:
        with self.lock:
            self.api_usage += 1
            return {"Sforce-Limit-Info": f"api-usage={self.api_usage}/{self.api_limit}"}

    def _serve(self, handler: Any) -> None:
        path = urllib.parse.urlsplit(handler.path).path
        if path.rstrip("/") == TOKEN_PATH:
            self._serve_token(handler)
            return
        super()._serve(handler)

    def _serve_token(self, handler: Any) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw).items()}
        with self.lock:
            self.token_requests += 1
            if handler.command != "POST" or form.get("grant_type") != "client_credentials":
                status, body = (
                    400,
                    {
                        "error": "unsupported_grant_type",
                        "error_description": "grant type not supported",
                    },
                )
            elif not (
                secrets.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
                and secrets.compare_digest(
                    form.get("client_secret", "").encode(), self.client_secret.encode()
                )
            ):
                status, body = (
                    400,
                    {"error": "invalid_client", "error_description": "invalid client credentials"},
                )
            else:
                self._tokens.add(self.credentials)
                status, body = (
                    200,
                    {
                        "access_token": self.credentials,
                        "signature": secrets.token_urlsafe(32),
                        "scope": "api",
                        "instance_url": self.base_url,
                        "id": f"{self.base_url}/id/00D000000000001AAA/{self.default_owner}",
                        "token_type": "Bearer",
                        "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
                    },
                )
            self.requests.append(("POST", TOKEN_PATH, status))
        handler.send_json(status, body)

    def route(self, request: Request) -> tuple[int, Any]:
        try:
            return self._route(request)
        except SoqlError as exc:
            return 400, _SfError(400, str(exc), exc.code).body()
        except _SfError as exc:
            return exc.status, exc.body()

    # -- routing ---------------------------------------------------------------------

    def _route(self, request: Request) -> tuple[int, Any]:
        prefix = f"/services/data/{self.api_version}/"
        if not request.path.startswith(prefix):
            raise _SfError(404, "The requested resource does not exist", "NOT_FOUND")
        parts = [p for p in request.path[len(prefix) :].split("/") if p]
        method = request.method
        if method in ("POST", "PATCH"):
            self.bodies.append((method, request.path, copy.deepcopy(request.body)))
            if self._locks_pending:
                self._locks_pending -= 1
                raise _SfError(
                    400, "unable to obtain exclusive access to this record", "UNABLE_TO_LOCK_ROW"
                )
        if parts == ["query"] and method == "GET":
            soql = request.arg("q")
            if not soql:
                raise _SfError(400, "A query string has to be specified", "MALFORMED_QUERY")
            self.queries.append(soql)
            return 200, self._page(self._run(parse_soql(soql)), 0)
        if len(parts) == 2 and parts[0] == "query" and method == "GET":
            locator, _, offset = parts[1].rpartition("-")
            if locator not in self._locators or not offset.isdigit():
                raise _SfError(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
            return 200, self._page(self._locators[locator], int(offset), locator)
        if parts[:2] == ["composite", "sobjects"]:
            return self._collections(method, parts[2:], request.body)
        if len(parts) == 3 and parts[0] == "sobjects" and parts[2] == "describe":
            if method != "GET":
                raise _SfError(405, "HTTP Method not allowed", "METHOD_NOT_ALLOWED")
            return 200, self._describe(self._object(parts[1], writable=False))
        if parts and parts[0] == "sobjects" and len(parts) in (2, 3):
            sobject = self._object(parts[1])
            if len(parts) == 2 and method == "POST":
                record = self._create(sobject, self._body(request.body))
                return 201, {"id": record["Id"], "success": True, "errors": []}
            if len(parts) == 3:
                record = self._tables[sobject].get(parts[2])
                if record is None:
                    raise _SfError(404, "The requested resource does not exist", "NOT_FOUND")
                if method == "GET":
                    return 200, self._with_attributes(sobject, copy.deepcopy(record))
                if method == "PATCH":
                    self._update(sobject, record, self._body(request.body))
                    return 204, None
        raise _SfError(404, "The requested resource does not exist", "NOT_FOUND")

    @staticmethod
    def _body(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _SfError(400, "The request body must be a JSON object", "JSON_PARSER_ERROR")
        return {k: v for k, v in body.items() if k != "attributes"}

    def _object(self, name: str, *, writable: bool = True) -> str:
        for obj in _FIELDS:
            if obj.lower() == name.lower():
                if writable and obj not in _WRITABLE_OBJECTS:
                    raise _SfError(
                        400, f"entity type {obj} does not support insert", "INVALID_TYPE"
                    )
                return obj
        raise _SfError(404, f"The requested resource does not exist: {name}", "NOT_FOUND")

    def _describe(self, sobject: str) -> dict[str, Any]:
        """The sObject Describe answer, trimmed to what a setup check reads."""
        unique = {f.lower() for f in self._unique.get(sobject, ())}
        fields = []
        for name in self._fields[sobject].values():
            custom = name.endswith("__c")
            kind = "id" if name == "Id" else "reference" if name in _LOOKUPS else "string"
            fields.append(
                {
                    "name": name,
                    "label": name.removesuffix("__c").replace("_", " "),
                    "type": "datetime" if name in ("CreatedDate", "LastModifiedDate") else kind,
                    "custom": custom,
                    # Unique custom keys here are External IDs too, as the docs ask.
                    "externalId": custom and name.lower() in unique,
                    "unique": name.lower() in unique,
                    "nillable": name not in _REQUIRED.get(sobject, ()) and name != "Id",
                    "length": 255 if kind == "string" else 18,
                }
            )
        return {"name": sobject, "label": sobject, "custom": False, "fields": fields}

    def drop_field(self, sobject: str, name: str) -> None:
        """Remove a custom field from an object (an org where it was never created)."""
        with self.lock:
            self._fields[self._object(sobject, writable=False)].pop(name.lower(), None)

    def _with_attributes(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        url = f"/services/data/{self.api_version}/sobjects/{sobject}/{record['Id']}"
        return {"attributes": {"type": sobject, "url": url}, **record}

    # -- collections -------------------------------------------------------------------

    def _collections(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _SfError(400, "records is required", "JSON_PARSER_ERROR")
        records: list[Any] = body["records"]
        if len(records) > MAX_COLLECTION:
            raise _SfError(
                400,
                f"Maximum number of records: {MAX_COLLECTION}, received {len(records)}",
                "EXCEEDED_ID_LIMIT",
            )
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = copy.deepcopy((self._tables, self._ids)) if all_or_none else None
        results: list[dict[str, Any]] = []
        for item in records:
            try:
                if not isinstance(item, dict):
                    raise _SfError(400, "each record must be an object", "JSON_PARSER_ERROR")
                type_ = (item.get("attributes") or {}).get("type")
                fields = self._body(item)
                if method == "POST" and not rest:
                    if not type_:
                        raise _SfError(400, "attributes.type is required", "INVALID_TYPE")
                    if "id" in fields or "Id" in fields:
                        raise _SfError(400, "cannot specify Id in an insert call", "INVALID_FIELD")
                    record = self._create(self._object(type_), fields)
                    results.append({"id": record["Id"], "success": True, "errors": []})
                elif method == "PATCH" and not rest:
                    rid = fields.pop("id", None) or fields.pop("Id", None)
                    sobject = self._object(type_ or "")
                    record = self._tables[sobject].get(str(rid))
                    if record is None:
                        raise _SfError(
                            404, f"invalid cross reference id: {rid}", "ENTITY_IS_DELETED"
                        )
                    self._update(sobject, record, fields)
                    results.append({"id": record["Id"], "success": True, "errors": []})
                elif method == "PATCH" and len(rest) == 2:
                    sobject = self._object(rest[0])
                    results.append(self._upsert(sobject, rest[1], fields))
                else:
                    raise _SfError(404, "The requested resource does not exist", "NOT_FOUND")
            except _SfError as exc:
                if exc.code == "NOT_FOUND":
                    raise
                results.append({"success": False, "errors": [exc.save_error()]})
        if all_or_none and any(not r["success"] for r in results) and snapshot is not None:
            self._tables, self._ids = snapshot
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            results = [
                r if not r["success"] else {"success": False, "errors": [rolled]} for r in results
            ]
        return 200, results

    def _upsert(self, sobject: str, key_field: str, fields: dict[str, Any]) -> dict[str, Any]:
        canonical = self._fields[sobject].get(key_field.lower())
        if canonical is None:
            raise _SfError(400, f"No such column '{key_field}' on {sobject}", "INVALID_FIELD")
        key = fields.get(canonical)
        if key in (None, ""):
            raise _SfError(400, f"{canonical} is required for upsert", "REQUIRED_FIELD_MISSING")
        matches = [
            r
            for r in self._tables[sobject].values()
            if str(r.get(canonical, "")).lower() == str(key).lower()
        ]
        if len(matches) > 1:
            raise _SfError(
                300, f"more than one record for {canonical}={key}", "DUPLICATE_EXTERNAL_ID"
            )
        if matches:
            self._update(sobject, matches[0], fields)
            return {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}
        record = self._create(sobject, fields)
        return {"id": record["Id"], "success": True, "errors": [], "created": True}

    # -- records -------------------------------------------------------------------

    def _new_id(self, sobject: str) -> str:
        return f"{_PREFIX[sobject]}{next(self._ids):012d}AAA"

    def _check_fields(self, sobject: str, fields: dict[str, Any], *, creating: bool) -> dict:
        known = self._fields[sobject]
        clean: dict[str, Any] = {}
        for name, value in fields.items():
            canonical = known.get(name.lower())
            if canonical is None:
                raise _SfError(
                    400,
                    f"No such column '{name}' on sobject of type {sobject}",
                    "INVALID_FIELD",
                    [name],
                )
            if canonical in _READ_ONLY or (sobject, canonical) in _DERIVED:
                raise _SfError(
                    400,
                    f"Unable to create/update fields: {canonical}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile.",
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    [canonical],
                )
            if not creating and (sobject, canonical) in _CREATE_ONLY:
                raise _SfError(
                    400,
                    f"Unable to create/update fields: {canonical}.",
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    [canonical],
                )
            targets = _LOOKUPS.get(canonical)
            if targets and value is not None and not any(value in self._tables[t] for t in targets):
                raise _SfError(
                    400,
                    f"{canonical}: id value of incorrect type: {value}",
                    "INVALID_CROSS_REFERENCE_KEY" if canonical != "OwnerId" else "INVALID_OWNER",
                    [canonical],
                )
            clean[canonical] = value
        return clean

    def _check_unique(self, sobject: str, fields: dict[str, Any], own_id: str | None) -> None:
        for name in self._unique.get(sobject, ()):
            value = fields.get(name)
            if value is None:
                continue
            for other in self._tables[sobject].values():
                if other["Id"] != own_id and str(other.get(name, "")).lower() == str(value).lower():
                    raise _SfError(
                        400,
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{other['Id']}",
                        "DUPLICATE_VALUE",
                        [name],
                    )

    def _create(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self._insert(sobject, fields)

    def _insert(
        self,
        sobject: str,
        fields: dict[str, Any],
        *,
        at: datetime | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        clean = self._check_fields(sobject, fields, creating=True) if validate else dict(fields)
        if validate:
            missing = [f for f in _REQUIRED.get(sobject, ()) if clean.get(f) in (None, "")]
            if missing:
                raise _SfError(
                    400,
                    f"Required fields are missing: [{', '.join(missing)}]",
                    "REQUIRED_FIELD_MISSING",
                    missing,
                )
            self._check_unique(sobject, clean, None)
        stamp = _stamp(at or datetime.now(UTC))
        record: dict[str, Any] = {"Id": self._new_id(sobject), **clean}
        record["CreatedDate"] = record["LastModifiedDate"] = stamp
        no_owner = ("User", "ContactHistory", "LeadHistory", "OpportunityContactRole",
                    "OpportunityHistory")  # fmt: skip
        if sobject not in no_owner:
            record.setdefault("OwnerId", getattr(self, "default_owner", None))
        if sobject == "Task":
            record.setdefault("Status", "Not Started")
            record.setdefault("TaskSubtype", "Task")
        if sobject == "Lead":
            record.setdefault("Status", "Open - Not Contacted")
        self._derive(sobject, record)
        self._tables[sobject][record["Id"]] = record
        if sobject == "Opportunity":
            self._stage_history(record, at or datetime.now(UTC))
        if sobject == "Opportunity" and record.get("ContactId"):
            self._insert(
                "OpportunityContactRole",
                {
                    "OpportunityId": record["Id"],
                    "ContactId": record["ContactId"],
                    "IsPrimary": True,
                },
                at=at,
                validate=False,
            )
        return record

    def _update(self, sobject: str, record: dict[str, Any], fields: dict[str, Any]) -> None:
        clean = self._check_fields(sobject, fields, creating=False)
        merged = {**record, **clean}
        missing = [f for f in _REQUIRED.get(sobject, ()) if merged.get(f) in (None, "")]
        if missing:
            raise _SfError(
                400,
                f"Required fields are missing: [{', '.join(missing)}]",
                "REQUIRED_FIELD_MISSING",
            )
        self._check_unique(sobject, clean, record["Id"])
        old_owner = record.get("OwnerId")
        old_stage = record.get("StageName")
        record.update(clean)
        record["LastModifiedDate"] = _stamp(datetime.now(UTC))
        self._derive(sobject, record)
        if sobject == "Opportunity" and record.get("StageName") != old_stage:
            self._stage_history(record, datetime.now(UTC))
        if sobject in ("Contact", "Lead") and clean.get("OwnerId", old_owner) != old_owner:
            self._history(sobject, record, old_owner, clean["OwnerId"], datetime.now(UTC))

    @staticmethod
    def _derive(sobject: str, record: dict[str, Any]) -> None:
        if sobject in ("Contact", "Lead"):
            parts = [record.get("FirstName"), record.get("LastName")]
            record["Name"] = " ".join(p for p in parts if p)
        if sobject == "Opportunity":
            record["IsClosed"] = str(record.get("StageName", "")).startswith("Closed")
            record["IsWon"] = record.get("StageName") == "Closed Won"

    def _stage_history(self, opportunity: dict[str, Any], at: datetime) -> None:
        self._insert(
            "OpportunityHistory",
            {"OpportunityId": opportunity["Id"], "StageName": opportunity.get("StageName"),
             "Amount": opportunity.get("Amount"), "CloseDate": opportunity.get("CloseDate")},
            at=at,
            validate=False,
        )  # fmt: skip

    def _history(
        self, sobject: str, record: dict[str, Any], old: str | None, new: str, at: datetime
    ) -> str:
        """Salesforce writes two rows for a lookup change: user names, then user ids."""
        table = f"{sobject}History"
        users = self._tables["User"]
        link = {f"{sobject}Id": record["Id"], "Field": "Owner"}
        old_name = users.get(old or "", {}).get("Name")
        new_name = users.get(new, {}).get("Name")
        self._insert(
            table,
            {**link, "DataType": "Text", "OldValue": old_name, "NewValue": new_name},
            at=at,
            validate=False,
        )
        row = self._insert(
            table,
            {**link, "DataType": "EntityId", "OldValue": old, "NewValue": new},
            at=at,
            validate=False,
        )
        return str(row["Id"])

    def _change_owner(self, sobject: str, record: dict[str, Any], new: str, at: datetime) -> str:
        if new not in self._tables["User"]:
            raise ValueError(f"no User {new}")
        old = record.get("OwnerId")
        record["OwnerId"] = new
        return self._history(sobject, record, old, new, at)

    def _person_for(self, email: str, at: datetime) -> dict[str, Any]:
        table = self._tables[self.person_object]
        for record in table.values():
            if str(record.get("Email", "")).lower() == email.lower():
                return record
        fields: dict[str, Any] = {"Email": email, "LastName": email.split("@")[0]}
        if self.person_object == "Lead":
            fields["Company"] = email.split("@")[-1]
        return self._insert(self.person_object, fields, at=at)

    # -- queries -------------------------------------------------------------------

    def _value(self, sobject: str, record: dict[str, Any], field: str) -> Any:
        """A field of ``record``; ``Rel.Field`` follows the ``RelId`` lookup one level."""
        if "." in field:
            rel, sub = field.split(".", 1)
            target_id = record.get(self._field(sobject, f"{rel}Id"))
            for table_name, table in self._tables.items():
                target = table.get(target_id) if target_id else None
                if target is not None:
                    name = self._fields[table_name].get(sub.lower())
                    if name is None:
                        raise SoqlError(f"No such column '{sub}' on {table_name}", "INVALID_FIELD")
                    return {"__type": table_name, name: target.get(name)}
            return None
        return record.get(self._field(sobject, field))

    def _field(self, sobject: str, field: str) -> str:
        canonical = self._fields[sobject].get(field.lower())
        if canonical is None:
            raise SoqlError(
                f"No such column '{field}' on entity '{sobject}'. If you are attempting to use a "
                "custom field, be sure to append the '__c' after the custom field name.",
                "INVALID_FIELD",
            )
        return canonical

    @staticmethod
    def _compare(left: Any, op: str, right: Any) -> bool:
        if op == "IN":
            return any(SalesforceStandin._compare(left, "=", v) for v in right)
        if isinstance(right, datetime):
            if left is None:
                return op == "!="
            left = _parse_stamp(str(left))
        elif isinstance(right, str) and isinstance(left, str):
            left, right = left.lower(), right.lower()
        elif (
            isinstance(right, float)
            and isinstance(left, int | float)
            and not isinstance(left, bool)
        ):
            left = float(left)
        if op == "=":
            return bool(left == right)
        if op == "!=":
            return bool(left != right)
        if left is None or right is None:
            return False
        try:
            return bool(
                {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
            )
        except TypeError as exc:
            raise SoqlError(
                f"cannot compare {left!r} {op} {right!r}", "INVALID_QUERY_FILTER_OPERATOR"
            ) from exc

    def _run(self, query: Soql) -> list[dict[str, Any]]:
        for obj in _FIELDS:
            if obj.lower() == query.sobject.lower():
                sobject = obj
                break
        else:
            raise SoqlError(f"sObject type '{query.sobject}' is not supported.", "INVALID_TYPE")
        rows = [
            r
            for r in self._tables[sobject].values()
            if all(
                self._compare(self._value(sobject, r, c.field), c.op, c.value) for c in query.where
            )
        ]
        for field, desc in reversed(query.order):
            name = self._field(sobject, field)
            rows.sort(key=lambda r, n=name: (r.get(n) is None, str(r.get(n) or "")), reverse=desc)
        if query.limit is not None:
            rows = rows[: query.limit]
        out = []
        for r in rows:
            item: dict[str, Any] = {}
            for field in query.fields:
                value = self._value(sobject, r, field)
                if "." in field:
                    rel = field.split(".", 1)[0]
                    if value is None:
                        item[rel] = None
                        continue
                    target_type = value.pop("__type")
                    slot = item.setdefault(rel, {"attributes": {"type": target_type}})
                    if slot is not None:
                        slot.update(value)
                else:
                    item[self._field(sobject, field)] = value
            url = f"/services/data/{self.api_version}/sobjects/{sobject}/{r['Id']}"
            out.append({"attributes": {"type": sobject, "url": url}, **item})
        return out

    def _page(
        self, rows: list[dict[str, Any]], offset: int, locator: str | None = None
    ) -> dict[str, Any]:
        batch = rows[offset : offset + self.batch_size]
        end = offset + len(batch)
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": batch}
        if end < len(rows):
            if locator is None:
                locator = "01g" + secrets.token_hex(6)
                self._locators[locator] = rows
            body["nextRecordsUrl"] = f"/services/data/{self.api_version}/query/{locator}-{end}"
        return body


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until interrupted (Ctrl-C or SIGTERM); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.standins.salesforce_api",
        description="Local stand-in for the Salesforce REST API slice touchflow uses.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8041, help="port to bind, 0 for any free one")
    parser.add_argument("--client-id", default=None, help="OAuth client id (default: random)")
    parser.add_argument(
        "--client-secret", default=None, help="OAuth client secret (default: random)"
    )
    parser.add_argument("--batch-size", type=int, default=5, help="query batch size (default 5)")
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    standin = SalesforceStandin(
        client_id=args.client_id,
        client_secret=args.client_secret,
        batch_size=args.batch_size,
        host=args.host,
        port=args.port,
    )
    with standin:
        print(f"salesforce stand-in listening on {standin.base_url}", flush=True)
        print("TOUCHFLOW_CRM__PROVIDER=salesforce", flush=True)
        print(f"TOUCHFLOW_CRM__INSTANCE_URL={standin.base_url}", flush=True)
        print(f"TOUCHFLOW_CRM__CLIENT_ID={standin.client_id}", flush=True)
        print(f"TOUCHFLOW_CRM__CLIENT_SECRET={standin.client_secret}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
