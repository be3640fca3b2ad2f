"""Deals (opportunities) as touchflow keeps them, whatever CRM or file they came from.

These vendor-free records are the contract between the places deals come
from (``touchflow deals import``, each CRM connector's deal pull) and the
places they are read (committee coverage, pipeline snapshots, reports, the
forecast and its backtest). Amounts are in the deal's own currency; a report
converts them with the configured rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class DealOutcome(StrEnum):
    """How a closed deal ended; an open deal has none."""

    WON = "won"
    LOST = "lost"


class ForecastCategory(StrEnum):
    """The forecast categories every CRM has a form of (Salesforce's names)."""

    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"
    CLOSED = "closed"
    OMITTED = "omitted"


class CommitteeRole(StrEnum):
    """A contact's part in the buying committee of a deal."""

    CHAMPION = "champion"
    ECONOMIC_BUYER = "economic_buyer"
    TECHNICAL_EVALUATOR = "technical_evaluator"
    END_USER = "end_user"
    INFLUENCER = "influencer"
    BLOCKER = "blocker"
    OTHER = "other"


@dataclass(frozen=True)
class Deal:
    """One deal as last known. ``source`` is ``csv`` or the CRM's name."""

    deal_id: str
    source: str
    account_domain: str | None
    owner_email: str | None
    amount: float
    currency: str
    stage: str
    created_at: datetime
    close_date: date | None
    closed_at: datetime | None = None
    outcome: DealOutcome | None = None
    name: str | None = None

    @property
    def is_open(self) -> bool:
        """True until the deal is won or lost."""
        return self.outcome is None


@dataclass(frozen=True)
class StageChange:
    """The deal entered ``stage`` at ``entered_at`` (one row per change)."""

    deal_id: str
    stage: str
    entered_at: datetime


@dataclass(frozen=True)
class DealContact:
    """A person on a deal with their committee role (from the CRM or inferred from title)."""

    deal_id: str
    email: str | None
    role: CommitteeRole
    crm_contact_id: str | None = None
    inferred: bool = False
