"""The CRM port: what touchflow needs from the CRM the team already runs.

Connectors (``touchflow/adapters/hubspot/crm.py``, ``salesforce_crm.py``,
``pipedrive_crm.py``, and the fake in ``touchflow/adapters/fake_crm.py``) implement
:class:`CrmConnector`. Every method is idempotent where the vendor allows it
(upserts keyed on email or domain), raises only :mod:`touchflow.errors`
(``RateLimited`` / ``RetryableError`` / ``FatalError``), and returns the CRM's
own ids so touchflow can store the link.

Vocabulary across vendors:

============  ==================  ==================  ===================
touchflow     HubSpot             Salesforce          Pipedrive
============  ==================  ==================  ===================
person        contact             Lead or Contact     person
company       company             Account             organization
deal          deal                Opportunity         deal
activity      note/call/email     Task                activity
owner         owner               User                user
============  ==================  ==================  ===================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from touchflow.domain.deals import Deal, DealContact, StageChange

ChangeKind = Literal["meeting_booked", "deal_created", "owner_changed"]
ActivityKind = Literal["email", "call", "sms", "linkedin", "task", "note"]


@dataclass(frozen=True)
class CrmPerson:
    """A person to create or update, keyed on ``email``."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    phone: str | None = None
    company: str | None = None
    domain: str | None = None
    owner_id: str | None = None  # the CRM owner/user id to assign
    # Extra properties (score, grade, lead source...) by touchflow name; connectors
    # map the ones they know to vendor properties and ignore the rest.
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CrmCompany:
    """A company to create or update, keyed on ``domain``."""

    domain: str
    name: str | None = None
    industry: str | None = None
    employees: int | None = None
    country: str | None = None
    owner_id: str | None = None


@dataclass(frozen=True)
class CrmDeal:
    """A deal (opportunity) for a person's company."""

    name: str
    person_id: str
    company_id: str | None = None
    owner_id: str | None = None
    amount: float | None = None
    stage: str | None = None  # vendor stage id/name; connectors have a default


@dataclass(frozen=True)
class CrmActivity:
    """A touch or call outcome logged on the person's timeline.

    ``external_key`` (the touch key) makes logging idempotent: the same key
    logged twice is one activity in the CRM.
    """

    person_id: str
    kind: ActivityKind
    subject: str
    body: str
    occurred_at: datetime
    external_key: str
    owner_id: str | None = None
    outcome: str | None = None  # call outcome (connected, voicemail, ...)


@dataclass(frozen=True)
class CrmOwner:
    """A CRM user who can own records."""

    id: str
    email: str
    name: str | None = None
    active: bool = True


@dataclass(frozen=True)
class CrmChange:
    """Something that happened in the CRM that a cadence must react to."""

    kind: ChangeKind
    person_email: str
    occurred_at: datetime
    external_id: str  # the vendor's id of the meeting/deal/change: dedupe key
    owner_id: str | None = None  # new owner (owner_changed)
    detail: str | None = None


@dataclass(frozen=True)
class ChangePage:
    """One page of changes and the cursor to ask for the next (None: caught up)."""

    changes: list[CrmChange]
    cursor: str | None


@dataclass(frozen=True)
class DealPage:
    """One page of a CRM's deals changed since a time, with their stage history and
    contacts, and the cursor for the next page (None: caught up).

    Stages are the CRM's own stage ids (``closedwon``, ``Closed Won``, ``5``):
    ``config/pipeline.yaml``'s ``sources`` map them to touchflow's stage names.
    ``modified_at`` is the latest modification time among the page's deals.
    """

    deals: list[Deal]
    stage_changes: list[StageChange]
    contacts: list[DealContact]
    cursor: str | None
    modified_at: datetime | None = None


@dataclass(frozen=True)
class CrmFieldCheck:
    """A custom field or property touchflow needs in the CRM, checked against it.

    ``object`` and ``field`` are the vendor's names (``calls``/``touchflow_key``,
    ``Task``/``Touchflow_Key__c``), so a RevOps admin can find them in the CRM's settings;
    ``problem`` None means the field is there and usable; ``note`` is advice that does not
    stop anything (a key field that is not unique, say).
    """

    object: str
    field: str
    purpose: str
    problem: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


OwnerStatus = Literal["ok", "unknown", "inactive", "matched_by_email", "no_owner"]


@dataclass(frozen=True)
class OwnerCheck:
    """A team member's owner in the CRM: ``crm_owner_id`` from team.yaml, checked.

    ``status``: ``ok`` (the id exists, active), ``unknown`` (no such owner), ``inactive``
    (deactivated or archived), ``matched_by_email`` (no id in team.yaml, but the CRM has an
    owner with the member's email: pushes use it), ``no_owner`` (neither: their leads are
    pushed without an owner).
    """

    email: str
    crm_owner_id: str | None
    status: OwnerStatus
    owner: CrmOwner | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "matched_by_email")


def check_owners(
    members: Iterable[tuple[str, str | None]], owners: Sequence[CrmOwner]
) -> list[OwnerCheck]:
    """Check ``(email, crm_owner_id)`` pairs against every owner the CRM lists."""
    by_email = {o.email.strip().lower(): o for o in owners if o.email}
    by_id = {o.id: o for o in owners}
    # Salesforce shows 15-character ids in its UI and returns 18-character ones (the same id
    # plus a 3-character checksum) from the API: team.yaml may hold either.
    by_id15 = {o.id[:15]: o for o in owners if len(o.id) == 18}
    out = []
    for email, owner_id in members:
        if owner_id:
            written = owner_id.strip()
            found = by_id.get(written) or (by_id15.get(written) if len(written) == 15 else None)
            status: OwnerStatus = (
                "unknown" if found is None else "ok" if found.active else "inactive"
            )
            out.append(OwnerCheck(email, owner_id, status, found))
        else:
            match = by_email.get(email.lower())
            ok = match is not None and match.active
            out.append(OwnerCheck(email, None, "matched_by_email" if ok else "no_owner", match))
    return out
