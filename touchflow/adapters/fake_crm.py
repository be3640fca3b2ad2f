"""An in-memory CRM with the observable semantics of the real connectors.

:class:`FakeCrm` implements :class:`touchflow.domain.crm.CrmConnector` for unit tests
and the demo: people are keyed on email and companies on domain (re-upserting
returns the same id and creates nothing), activities are deduplicated on
``external_key``, unknown ids are :class:`~touchflow.errors.FatalError` (as a
vendor's 404 would be), and :meth:`FakeCrm.changes_since` pages through changes
``page_size`` at a time with an opaque cursor.

It also offers the data half of the stand-in controls
(:class:`tests.support.standins.crm_base.CrmStandin`): ``seed_owner``,
``add_change``, ``count``, ``record`` and ``drop_field``; there is no HTTP, so no
``fail_next``. Like the real CRMs it keys activities on a custom field,
``activity.touchflow_key``, which :meth:`FakeCrm.check_fields` reports (present
unless ``drop_field`` removed it).
What touchflow itself does shows up as changes the way it would in a CRM:
``assign_owner`` records an ``owner_changed`` and ``create_deal`` a
``deal_created``, stamped by the injected ``clock``. Thread-safe.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, Literal

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

__all__ = ["FakeCrm"]

RecordKind = Literal["person", "company", "deal", "activity", "association"]


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class FakeCrm:
    """:class:`touchflow.domain.crm.CrmConnector` in memory."""

    name = "fake"

    def __init__(
        self,
        *,
        page_size: int = 2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owners: Sequence[CrmOwner] = (),
    ) -> None:
        self.page_size = page_size
        self._clock = clock
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.people: dict[str, dict[str, Any]] = {}  # id -> fields
        self.companies: dict[str, dict[str, Any]] = {}
        self.deals: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, dict[str, Any]] = {}
        self.associations: set[tuple[str, str]] = set()  # (person id, company id)
        self.owners: dict[str, CrmOwner] = {o.id: o for o in owners}
        self._changes: list[tuple[datetime, int, CrmChange]] = []
        self._by_email: dict[str, str] = {}
        self._by_domain: dict[str, str] = {}
        self._by_key: dict[str, str] = {}
        self.closed = False
        self.fields: set[tuple[str, str]] = {("activity", "touchflow_key")}
        # Deals as the pipeline sees them (add_pipeline_deal / move_deal): id -> record.
        self.pipeline_deals: dict[str, dict[str, Any]] = {}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def _fatal(self, operation: str, message: str, status: int = 404) -> FatalError:
        return FatalError(message, connector=self.name, operation=operation, status=status)

    # -- CrmConnector ----------------------------------------------------------------

    def upsert_people(self, people: Sequence[CrmPerson]) -> list[str]:
        ids = []
        with self._lock:
            for p in people:
                email = p.email.strip().lower()
                if "@" not in email:
                    raise self._fatal("upsert_people", f"invalid email {p.email!r}", 400)
                if p.owner_id:
                    self._check_owner("upsert_people", p.owner_id)
                fields = {k: v for k, v in asdict(p).items() if v not in (None, {}, "")}
                fields["email"] = email
                person_id = self._by_email.get(email)
                if person_id is None:
                    person_id = self._new_id("p")
                    self._by_email[email] = person_id
                    self.people[person_id] = {"id": person_id}
                self.people[person_id].update(fields)
                ids.append(person_id)
        return ids

    def upsert_company(self, company: CrmCompany) -> str:
        domain = company.domain.strip().lower()
        with self._lock:
            company_id = self._by_domain.get(domain)
            if company_id is None:
                company_id = self._new_id("c")
                self._by_domain[domain] = company_id
                self.companies[company_id] = {"id": company_id}
            fields = {k: v for k, v in asdict(company).items() if v is not None}
            fields["domain"] = domain
            self.companies[company_id].update(fields)
            return company_id

    def associate(self, person_id: str, company_id: str) -> None:
        with self._lock:
            self._person("associate", person_id)
            if company_id not in self.companies:
                raise self._fatal("associate", f"no company {company_id}")
            self.associations.add((person_id, company_id))
            self.people[person_id]["company_id"] = company_id

    def create_deal(self, deal: CrmDeal) -> str:
        with self._lock:
            person = self._person("create_deal", deal.person_id)
            if deal.company_id and deal.company_id not in self.companies:
                raise self._fatal("create_deal", f"no company {deal.company_id}")
            deal_id = self._new_id("d")
            self.deals[deal_id] = {"id": deal_id, **asdict(deal)}
            self._add(
                CrmChange(
                    kind="deal_created",
                    person_email=person["email"],
                    occurred_at=_utc(self._clock()),
                    external_id=deal_id,
                    owner_id=deal.owner_id,
                    detail=deal.name,
                )
            )
            return deal_id

    def assign_owner(self, person_id: str, owner_id: str) -> None:
        with self._lock:
            person = self._person("assign_owner", person_id)
            self._check_owner("assign_owner", owner_id)
            if person.get("owner_id") == owner_id:
                return
            person["owner_id"] = owner_id
            at = _utc(self._clock())
            self._add(self._owner_change(person_id, person["email"], owner_id, at))

    def log_activity(self, activity: CrmActivity) -> str:
        with self._lock:
            existing = self._by_key.get(activity.external_key)
            if existing is not None:
                return existing
            self._person("log_activity", activity.person_id)
            activity_id = self._new_id("a")
            self._by_key[activity.external_key] = activity_id
            self.activities[activity_id] = {"id": activity_id, **asdict(activity)}
            return activity_id

    def list_owners(self) -> list[CrmOwner]:
        with self._lock:
            return list(self.owners.values())

    def changes_since(self, since: datetime, cursor: str | None = None) -> ChangePage:
        since = _utc(since)
        try:
            start = int(cursor) if cursor else 0
        except ValueError as exc:
            raise self._fatal("changes_since", f"bad cursor {cursor!r}", 400) from exc
        with self._lock:
            after = [c for at, _, c in sorted(self._changes, key=lambda t: t[:2]) if at > since]
        page = after[start : start + self.page_size]
        end = start + len(page)
        return ChangePage(changes=page, cursor=str(end) if end < len(after) else None)

    def deals_since(self, since: datetime, cursor: str | None = None) -> DealPage:
        since = _utc(since)
        try:
            start = int(cursor) if cursor else 0
        except ValueError as exc:
            raise self._fatal("deals_since", f"bad cursor {cursor!r}", 400) from exc
        with self._lock:
            changed = sorted(
                (r for r in self.pipeline_deals.values() if r["modified_at"] > since),
                key=lambda r: (r["modified_at"], r["id"]),
            )
            page = changed[start : start + self.page_size]
            deals, history, contacts = [], [], []
            for r in page:
                deals.append(
                    Deal(
                        deal_id=r["id"], source=self.name, account_domain=r["domain"],
                        owner_email=r["owner_email"], amount=r["amount"],
                        currency=r["currency"], stage=r["stage"], created_at=r["created_at"],
                        close_date=r["close_date"], closed_at=r["closed_at"],
                        outcome=r["outcome"], name=r["name"],
                    )
                )  # fmt: skip
                history += [StageChange(r["id"], stage, at) for stage, at in r["history"]]
                contacts += [
                    DealContact(r["id"], email, role_from_label(label), crm_id)
                    for crm_id, email, label in r["contacts"]
                ]
        end = start + len(page)
        return DealPage(
            deals=deals,
            stage_changes=history,
            contacts=contacts,
            cursor=str(end) if end < len(changed) else None,
            modified_at=max((r["modified_at"] for r in page), default=None),
        )

    def check_fields(self) -> list[CrmFieldCheck]:
        with self._lock:
            present = ("activity", "touchflow_key") in self.fields
        return [
            CrmFieldCheck(
                "activity",
                "touchflow_key",
                "activities are deduplicated on it",
                problem=None if present else "missing",
            )
        ]

    def close(self) -> None:
        self.closed = True

    # -- controls (the data half of CrmStandin) -------------------------------------

    def seed_owner(self, email: str, name: str) -> str:
        with self._lock:
            owner_id = self._new_id("u")
            self.owners[owner_id] = CrmOwner(id=owner_id, email=email, name=name)
            return owner_id

    def drop_field(self, object: str, name: str) -> None:
        """Remove a custom field, as in a CRM where it was never created."""
        with self._lock:
            self.fields.discard((object, name))

    def add_change(
        self,
        kind: ChangeKind,
        person_email: str,
        *,
        at: datetime,
        owner_id: str | None = None,
    ) -> str:
        """Make a change happen at ``at``, as someone working in the CRM would."""
        at = _utc(at)
        email = person_email.strip().lower()
        with self._lock:
            person_id = self._by_email.get(email) or self.upsert_people([CrmPerson(email)])[0]
            if kind == "owner_changed":
                if not owner_id:
                    raise ValueError("owner_changed needs owner_id")
                self.people[person_id]["owner_id"] = owner_id
                change = self._owner_change(person_id, email, owner_id, at)
            else:
                prefix = "m" if kind == "meeting_booked" else "d"
                change = CrmChange(
                    kind=kind,
                    person_email=email,
                    occurred_at=at,
                    external_id=self._new_id(prefix),
                    owner_id=owner_id,
                )
                if kind == "deal_created":
                    self.deals[change.external_id] = {"id": change.external_id, "name": "Deal"}
            self._add(change)
            return change.external_id

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
        contacts: Sequence[tuple[str | None, str | None]] = (),
    ) -> str:
        """A deal created at ``at`` in ``stage`` (a stage id of this CRM); contacts are
        ``(email, role label)``. Returns its id."""
        at = _utc(at)
        with self._lock:
            deal_id = self._new_id("o")
            self.pipeline_deals[deal_id] = {
                "id": deal_id, "stage": stage, "created_at": at, "modified_at": at,
                "amount": amount, "currency": currency, "domain": domain,
                "owner_email": owner_email, "name": name, "close_date": close_date,
                "closed_at": None, "outcome": None, "history": [(stage, at)],
                "contacts": [(self._new_id("p"), e, label) for e, label in contacts],
            }  # fmt: skip
            return deal_id

    def move_deal(
        self, deal_id: str, stage: str, *, at: datetime, outcome: DealOutcome | None = None
    ) -> None:
        """Move a deal to ``stage`` at ``at`` (closing it when ``outcome`` is given)."""
        at = _utc(at)
        with self._lock:
            r = self.pipeline_deals[deal_id]
            r["stage"], r["modified_at"] = stage, at
            r["history"].append((stage, at))
            if outcome is not None:
                r["outcome"], r["closed_at"] = outcome, at

    def count(self, kind: RecordKind) -> int:
        with self._lock:
            return {
                "person": len(self.people),
                "company": len(self.companies),
                "deal": len(self.deals),
                "activity": len(self.activities),
                "association": len(self.associations),
            }[kind]

    def record(self, kind: RecordKind, id: str) -> dict[str, Any]:
        with self._lock:
            table = {
                "person": self.people,
                "company": self.companies,
                "deal": self.deals,
                "activity": self.activities,
            }[kind]
            return dict(table[id])

    # -- helpers -------------------------------------------------------------------

    def _person(self, operation: str, person_id: str) -> dict[str, Any]:
        person = self.people.get(person_id)
        if person is None:
            raise self._fatal(operation, f"no person {person_id}")
        return person

    def _check_owner(self, operation: str, owner_id: str) -> None:
        if self.owners and owner_id not in self.owners:
            raise self._fatal(operation, f"no owner {owner_id}", 400)

    def _owner_change(self, person_id: str, email: str, owner_id: str, at: datetime) -> CrmChange:
        return CrmChange(
            kind="owner_changed",
            person_email=email,
            occurred_at=at,
            external_id=f"{person_id}:{owner_id}:{int(at.timestamp() * 1000)}",
            owner_id=owner_id,
        )

    def _add(self, change: CrmChange) -> None:
        self._changes.append((change.occurred_at, len(self._changes), replace(change)))
