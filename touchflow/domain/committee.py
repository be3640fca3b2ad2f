"""Buying-committee coverage of a deal (pure).

A deal's committee is its contacts, each with a role: the CRM's contact role
when it gave one, else the role its job title implies
(:meth:`touchflow.domain.pipeline.Pipeline.role_for_title`). Coverage is the
weight of the required roles (``committee.roles`` in ``config/pipeline.yaml``)
that at least one contact fills, over the weight of all of them: 0 (none) to
1 (every required role has someone). A deal is single-threaded when fewer
distinct people than ``committee.single_threaded_below`` are on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from touchflow.domain.deals import CommitteeRole
from touchflow.domain.pipeline import CommitteeConfig, Pipeline

__all__ = ["CommitteeMember", "Coverage", "committee_role", "coverage", "role_from_label"]

# A CRM's contact-role label (Salesforce's OpportunityContactRole.Role picklist,
# HubSpot's deal-contact association labels), folded: lower case, single spaces.
_LABELS: dict[str, CommitteeRole] = {
    "champion": CommitteeRole.CHAMPION,
    "economic buyer": CommitteeRole.ECONOMIC_BUYER,
    "economic decision maker": CommitteeRole.ECONOMIC_BUYER,
    "decision maker": CommitteeRole.ECONOMIC_BUYER,
    "executive sponsor": CommitteeRole.ECONOMIC_BUYER,
    "budget holder": CommitteeRole.ECONOMIC_BUYER,
    "technical evaluator": CommitteeRole.TECHNICAL_EVALUATOR,
    "technical buyer": CommitteeRole.TECHNICAL_EVALUATOR,
    "evaluator": CommitteeRole.TECHNICAL_EVALUATOR,
    "end user": CommitteeRole.END_USER,
    "business user": CommitteeRole.END_USER,
    "user": CommitteeRole.END_USER,
    "influencer": CommitteeRole.INFLUENCER,
    "blocker": CommitteeRole.BLOCKER,
    "detractor": CommitteeRole.BLOCKER,
}


@dataclass(frozen=True)
class CommitteeMember:
    """One person on a deal's committee; ``via`` says where the role came from."""

    email: str | None
    role: CommitteeRole
    via: str  # "crm" | "title" | "none"
    title: str | None = None
    last_touched_at: datetime | None = None


@dataclass(frozen=True)
class Coverage:
    """How well a deal's committee covers the required roles."""

    score: float  # 0..1, weighted
    covered: tuple[CommitteeRole, ...]
    missing: tuple[CommitteeRole, ...]
    people: int
    single_threaded: bool
    economic_buyer_last_touched_at: datetime | None

    def days_since_economic_buyer_touch(self, now: datetime) -> int | None:
        """Whole days since anyone touched an economic buyer; None if never (or none)."""
        last = self.economic_buyer_last_touched_at
        return None if last is None else max(0, (now - last).days)


def role_from_label(label: str | None) -> CommitteeRole:
    """A CRM's contact-role label as a committee role (``other`` when unknown or empty).

    ``"Economic Decision Maker"``, ``"economic_buyer"`` and ``"Decision Maker"`` are
    all :attr:`CommitteeRole.ECONOMIC_BUYER`; ``"Other"`` and labels such as
    HubSpot's ``"Primary"`` are :attr:`CommitteeRole.OTHER` (the title decides then).
    """
    if not label:
        return CommitteeRole.OTHER
    folded = " ".join(label.replace("_", " ").replace("-", " ").lower().split())
    return _LABELS.get(folded, CommitteeRole.OTHER)


def committee_role(
    pipeline: Pipeline, crm_role: CommitteeRole | None, title: str | None
) -> tuple[CommitteeRole, str]:
    """A contact's role and its origin: the CRM's (unless other/none), else the title's."""
    if crm_role is not None and crm_role is not CommitteeRole.OTHER:
        return crm_role, "crm"
    inferred = pipeline.role_for_title(title)
    if inferred is not None:
        return inferred, "title"
    return CommitteeRole.OTHER, "crm" if crm_role is not None else "none"


def coverage(members: Iterable[CommitteeMember], config: CommitteeConfig) -> Coverage:
    """The weighted coverage of ``members`` against ``config``'s required roles."""
    people = list(members)
    roles = {m.role for m in people}
    weights: Mapping[CommitteeRole, float] = config.roles
    total = sum(weights.values())
    covered = tuple(r for r in weights if r in roles)
    missing = tuple(r for r in weights if r not in roles)
    score = sum(weights[r] for r in covered) / total if total else 1.0
    distinct = {m.email or id(m) for m in people}
    touched = [
        m.last_touched_at
        for m in people
        if m.role is CommitteeRole.ECONOMIC_BUYER and m.last_touched_at is not None
    ]
    return Coverage(
        score=round(score, 4),
        covered=covered,
        missing=missing,
        people=len(distinct),
        single_threaded=len(distinct) < config.single_threaded_below,
        economic_buyer_last_touched_at=max(touched) if touched else None,
    )
