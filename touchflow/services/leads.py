"""Speed to lead: one inbound lead, from the form to an AE and the CRM, in one transaction.

:func:`process_lead` validates and normalizes the lead, stores it (matched to
its account), enriches the account, scores it against the ICP, routes it to
an AE, enrolls it in the inbound cadence owned by that AE and queues the CRM
push in the transactional outbox. The answer (the decision) is stored under
the client's idempotency key, so a retried request gets the same answer and
changes nothing.

Idempotency-Key follows the IETF draft (draft-ietf-httpapi-idempotency-key-header):
:func:`begin_request` claims the key in its own transaction before the lead
is processed. The same key with the same payload (a SHA-256 of the JSON
body, the key field left out) gets the stored answer; with another payload,
:class:`~touchflow.errors.IdempotencyConflict` (422); while the first request
is still being processed, the same error with ``in_flight`` (409). A request
that fails releases its key (:func:`release_request`), so a rejected lead
may be corrected and sent again under it. Keys are forgotten after
:data:`KEY_TTL` (24 hours); a claim left by a process that died is dropped
after :data:`IN_FLIGHT_TIMEOUT`. The CRM push itself and the AE's notification happen after
the commit (``touchflow/entrypoints/api/leads.py``): a CRM that is down only leaves the push queued.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from touchflow.domain.engine import CadenceRuntime, SenderInfo
from touchflow.domain.normalize import Rejection, normalize
from touchflow.domain.routing import Router
from touchflow.domain.scoring import IcpConfig, ScoreResult
from touchflow.errors import IdempotencyConflict, LeadRejected
from touchflow.ports import Enricher
from touchflow.services.crm_sync import lead_rows, queue_lead
from touchflow.services.enrichment import enrich_accounts
from touchflow.store import lead_requests as keys
from touchflow.store.cadence_versions import save_cadence_version
from touchflow.store.enrollments import enroll
from touchflow.store.intake import load_batch
from touchflow.store.routing_store import route_prospects
from touchflow.store.schema import accounts, enrollments, lead_requests, prospects
from touchflow.store.scores import rescore

#: Scalar fields a lead may carry; anything else in the body is refused.
_MAX_FIELDS = 60
_MAX_VALUE = 2000
#: (fields, characters per value): the API documents these bounds in its schema.
LEAD_LIMITS = (_MAX_FIELDS, _MAX_VALUE)
#: How long an Idempotency-Key is remembered: a retry within this answers the first answer.
KEY_TTL = timedelta(hours=24)
#: A claim older than this was left by a request whose process died: the key is free again.
IN_FLIGHT_TIMEOUT = timedelta(minutes=1)


@dataclass
class LeadServices:
    """What processing a lead needs; built once per API process."""

    sender: SenderInfo
    default_owner: str
    inbound: CadenceRuntime | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    enricher: Enricher | None = None
    icp: IcpConfig | None = None
    router: Router | None = None
    crm: str | None = None  # the CRM's name when one is configured
    #: The inbound cadence's version is stored (the API does it once per process).
    inbound_saved: bool = False


@dataclass
class LeadDecision:
    """The answer to ``POST /leads``."""

    email: str
    prospect_id: int
    new: bool
    score: int | None = None
    grade: str | None = None
    lifecycle: str | None = None
    reasons: list[str] = field(default_factory=list)
    assignee: str | None = None
    rule: str | None = None
    sla_due_at: str | None = None
    cadence: str | None = None
    enrolled: bool = False
    crm_queued: bool = False
    warnings: list[str] = field(default_factory=list)
    duplicate: bool = False  # answered from an earlier request with the same key
    #: What the CRM push sends (``crm_sync.lead_rows``), when the caller pushes it; not answered.
    crm_rows: list[Any] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The answer's fields (everything but ``crm_rows``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "crm_rows"}


def _fields(payload: Mapping[str, Any]) -> dict[str, str]:
    if len(payload) > _MAX_FIELDS:
        raise LeadRejected("too_many_fields", f"at most {_MAX_FIELDS} fields per lead")
    out: dict[str, str] = {}
    for key, value in payload.items():
        if not isinstance(key, str) or key == "idempotency_key":
            continue
        if value is None:
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if not isinstance(value, str | int | float):
            raise LeadRejected("bad_field", f"field {key!r} must be text or a number")
        # JSON's 1e999 parses as infinity and NaN as nan: neither is a number a lead has.
        if isinstance(value, float) and not math.isfinite(value):
            raise LeadRejected("bad_number", f"field {key!r} must be a finite number")
        text = str(value)
        if len(text) > _MAX_VALUE:
            raise LeadRejected("value_too_long", f"field {key!r} is longer than {_MAX_VALUE}")
        out[key] = text
    return out


# Built once (see touchflow.store.prebuilt): one lead per request.
_ANSWER = select(lead_requests.c.response).where(
    lead_requests.c.idempotency_key == bindparam("key")
)
_PROSPECT = (
    select(prospects.c.id, prospects.c.account_id, accounts.c.domain)
    .outerjoin(accounts, accounts.c.id == prospects.c.account_id)
    .where(prospects.c.email == bindparam("email"))
)


_SET_OWNER = (
    update(enrollments)
    .where(
        enrollments.c.prospect_id == bindparam("pid"),
        enrollments.c.cadence_id == bindparam("cadence"),
    )
    .values(owner_email=bindparam("owner"), updated_at=bindparam("at"))
)


class _Owned:
    """A ``lead_rows`` row read before routing, with the assignee as ``ae_email``."""

    def __init__(self, row: Any, ae_email: str | None) -> None:
        self._row = row
        self.ae_email = ae_email

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def payload_hash(payload: Mapping[str, Any]) -> str:
    """The fingerprint an Idempotency-Key is bound to: SHA-256 of the canonical JSON body.

    The ``idempotency_key`` field itself is left out, so the key in the header
    or in the body fingerprints the same lead alike.
    """
    body = {k: v for k, v in payload.items() if k != "idempotency_key"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def begin_request(
    conn: Connection, key: str, fingerprint: str, now: datetime
) -> LeadDecision | None:
    """Claim ``key`` for a request with this payload ``fingerprint`` (None: go on and process it).

    Returns the stored decision for a repeat of a request that was answered;
    raises :class:`~touchflow.errors.IdempotencyConflict` for a key in flight
    or reused with another payload. Run it in its own transaction, committed
    before the lead is processed, so other processes see the claim.
    """
    held = keys.claim(
        conn,
        key,
        fingerprint,
        now,
        expired_before=now - KEY_TTL,
        abandoned_before=now - IN_FLIGHT_TIMEOUT,
    )
    if held is None:
        return None
    if held.state != keys.DONE or held.response is None:
        raise IdempotencyConflict(
            "a request with this Idempotency-Key is still being processed; retry in a moment",
            in_flight=True,
        )
    # Keys stored before payloads were fingerprinted answer whatever the payload.
    if held.payload_hash is not None and held.payload_hash != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with another payload; use a new key for a new lead",
            in_flight=False,
        )
    decision = LeadDecision(**held.response)
    decision.duplicate = True
    return decision


def release_request(conn: Connection, key: str) -> None:
    """Free ``key`` after its request failed (a rejected lead may be sent again under it)."""
    keys.release(conn, key)


def previous_answer(conn: Connection, key: str) -> LeadDecision | None:
    """The decision stored under an idempotency key, if that request was already taken."""
    row = conn.execute(_ANSWER, {"key": key}).scalar()
    if row is None:
        return None
    decision = LeadDecision(**row)
    decision.duplicate = True
    return decision


def save_inbound_version(conn: Connection, services: LeadServices, now: datetime) -> None:
    """Store the inbound cadence's version (if there is one), so leads enroll pinned to it.

    Runs in the caller's transaction; the API does it once per process before
    its first lead, then sets ``services.inbound_saved`` (after the commit), and
    :func:`process_lead` no longer stores the version with every lead.
    """
    if services.inbound is not None:
        save_cadence_version(conn, services.inbound.cadence, now)


def process_lead(
    conn: Connection,
    services: LeadServices,
    payload: Mapping[str, Any],
    now: datetime,
    *,
    idempotency_key: str | None = None,
    push_hold: timedelta | None = None,
) -> LeadDecision:
    """Take one lead; see the module docstring. Runs in the caller's transaction.

    ``push_hold``: the caller pushes the lead to the CRM itself after the commit
    (with ``decision.crm_rows`` and :func:`touchflow.services.crm_sync.push_leads_now`);
    the outbox row waits that long before a drain would push it instead.
    """
    if idempotency_key:
        earlier = previous_answer(conn, idempotency_key)
        if earlier is not None:
            return earlier
    result = normalize(_fields(payload), aliases=services.aliases, source="api:leads")
    if isinstance(result, Rejection):
        raise LeadRejected(result.code, result.message)
    counts = load_batch(conn, [result], now)
    row = conn.execute(_PROSPECT, {"email": result.email}).one()
    decision = LeadDecision(
        email=result.email,
        prospect_id=row.id,
        new=counts.new == 1,
        warnings=[str(w) for w in result.warnings],
    )
    if services.enricher is not None and row.domain:
        enrich_accounts(conn, services.enricher, now, domains=[row.domain])
    if services.icp is not None:
        scored: dict[int, ScoreResult] = {}
        rescore(conn, services.icp, now, prospect_ids=[row.id], results=scored)
        r = scored[row.id]
        decision.score, decision.grade, decision.lifecycle = r.score, r.grade, r.lifecycle
        decision.reasons = [str(reason) for reason in r.reasons]
    qualified = decision.lifecycle != "disqualified"
    # Routing locks the fairness ledger until the commit, and every lead waits for
    # that lock: so it comes last, and what does not need the assignee comes first.
    enrolled_id: int | None = None
    if services.inbound is not None and qualified:
        res = enroll(
            conn,
            services.inbound,
            [row.id],
            owner_email=services.default_owner,  # the assignee's, once routed (below)
            sender=services.sender,
            now=now,
            save_version=not services.inbound_saved,
        )
        decision.cadence = services.inbound.cadence.id
        decision.enrolled = res.enrolled == 1
        enrolled_id = row.id if decision.enrolled else None
    if services.crm is not None and qualified:
        queue_lead(conn, services.crm, result.email, now, hold=push_hold)
        decision.crm_queued = True
        if push_hold is not None:
            decision.crm_rows = lead_rows(conn, services.crm, [result.email])
    if services.router is not None and qualified:
        routed = route_prospects(conn, services.router, [row.id], now)
        if routed:
            d = routed[0]
            decision.assignee, decision.rule = d.assignee, d.rule
            decision.sla_due_at = d.sla_due_at.isoformat() if d.sla_due_at else None
        else:
            decision.assignee = conn.execute(
                select(prospects.c.ae_email).where(prospects.c.id == row.id)
            ).scalar()
        owner = decision.assignee if decision.assignee and "@" in decision.assignee else None
        if owner and enrolled_id is not None and owner != services.default_owner:
            conn.execute(
                _SET_OWNER,
                {"owner": owner, "pid": enrolled_id, "cadence": decision.cadence, "at": now},
            )
        # The push reads the owner from ae_email, which routing just set.
        decision.crm_rows = [_Owned(r, owner) for r in decision.crm_rows]
    if idempotency_key:
        keys.finish(
            conn,
            idempotency_key,
            payload_hash(payload),
            row.id,
            decision.as_dict(),
            now,
        )
    return decision
