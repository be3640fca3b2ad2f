"""The pipeline facts a forecast needs, and history cut to what was known at a moment.

``cut_history`` is the only door to the data for the model and the backtest:
whatever it drops (deals created later, stage and close-date changes made
later, outcomes decided later) cannot leak into a forecast made ``as_of``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from touchflow.domain.deals import Deal, DealOutcome, ForecastCategory, StageChange
from touchflow.domain.forecasting._periods import GRANULARITIES, Granularity, utc


@dataclass(frozen=True, eq=False)
class ForecastPipeline:
    """What ``config/pipeline.yaml`` says, as plain values.

    ``stages`` are the OPEN stages in order (closing is the deal's outcome);
    ``rates`` give the units of ``currency`` one unit of another currency is
    worth (``{"EUR": 1.08}`` with ``currency="USD"``).
    """

    stages: tuple[str, ...]
    probabilities: Mapping[str, float]
    categories: Mapping[str, ForecastCategory]
    period: Granularity = "quarter"
    currency: str = "USD"
    rates: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a pipeline needs at least one open stage")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"stages repeat: {list(self.stages)}")
        if self.period not in GRANULARITIES:
            raise ValueError(f"period must be 'month' or 'quarter', not {self.period!r}")
        for stage, p in self.probabilities.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probability of stage {stage!r} must be within 0..1, not {p}")
        for cur, rate in self.rates.items():
            if rate <= 0:
                raise ValueError(f"rate of {cur} must be positive, not {rate}")

    def probability(self, stage: str) -> float:
        return float(self.probabilities.get(stage, 0.0))

    def category(self, stage: str) -> ForecastCategory:
        return self.categories.get(stage, ForecastCategory.PIPELINE)

    def convert(self, amount: float, currency: str) -> float:
        """``amount`` in the reporting currency."""
        if currency == self.currency:
            return amount
        rate = self.rates.get(currency)
        if rate is None:
            raise ValueError(
                f"no rate from {currency} to {self.currency}: add it to the pipeline's rates"
            )
        return amount * rate


@dataclass(frozen=True)
class CloseDateChange:
    """The deal's expected close date became ``close_date`` at ``changed_at``.

    Optional history (a CRM's field history, daily snapshots): without it a
    deal's close date is the one on its record, the latest known.
    """

    deal_id: str
    close_date: date
    changed_at: datetime


@dataclass(frozen=True)
class KnownDeal:
    """A deal as it was known at the cut: stage, close date and outcome then."""

    deal_id: str
    owner_email: str | None
    account_domain: str | None
    amount: float
    currency: str
    created_at: datetime
    stage: str
    stage_entered_at: datetime
    path: tuple[tuple[str, datetime], ...]
    close_date: date | None
    close_date_pushes: int
    closed_at: datetime | None
    outcome: DealOutcome | None

    @property
    def is_open(self) -> bool:
        return self.outcome is None


@dataclass(frozen=True)
class KnownHistory:
    as_of: datetime
    deals: tuple[KnownDeal, ...]

    def open_deals(self) -> list[KnownDeal]:
        return [d for d in self.deals if d.is_open]


def cut_history(
    deals: Iterable[Deal],
    changes: Iterable[StageChange],
    as_of: datetime,
    *,
    close_date_changes: Iterable[CloseDateChange] = (),
) -> KnownHistory:
    """Everything as it was known at ``as_of`` and nothing after.

    A deal is known if created at or before ``as_of``; its stage is its last
    stage change at or before ``as_of`` (its first one if all came later; the
    recorded stage if it has no history at all); its outcome counts only if it
    closed at or before ``as_of``. Its close date is the last close-date change
    at or before ``as_of`` when it has close-date history, else the recorded one.
    """
    as_of = utc(as_of)
    by_deal: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for ch in changes:
        by_deal[ch.deal_id].append((utc(ch.entered_at), ch.stage))
    dates_by_deal: dict[str, list[tuple[datetime, date]]] = defaultdict(list)
    for cd in close_date_changes:
        dates_by_deal[cd.deal_id].append((utc(cd.changed_at), cd.close_date))

    known: list[KnownDeal] = []
    for deal in deals:
        created = utc(deal.created_at)
        if created > as_of:
            continue
        history = sorted(by_deal.get(deal.deal_id, ()))
        seen = [(stage, at) for at, stage in history if at <= as_of]
        if seen:
            stage, entered = seen[-1]
        elif history:
            stage, entered = history[0][1], created
        else:
            stage, entered = deal.stage, created
        path = tuple(seen) if seen else ((stage, entered),)

        closed_at = utc(deal.closed_at) if deal.closed_at is not None else None
        decided = deal.outcome is not None and closed_at is not None and closed_at <= as_of

        close_date = deal.close_date
        pushes = 0
        dated = sorted(dates_by_deal.get(deal.deal_id, ()))
        if dated:
            before = [d for at, d in dated if at <= as_of]
            close_date = before[-1] if before else None
            pushes = sum(1 for a, b in itertools.pairwise(before) if b > a)

        known.append(
            KnownDeal(
                deal_id=deal.deal_id,
                owner_email=deal.owner_email,
                account_domain=deal.account_domain,
                amount=deal.amount,
                currency=deal.currency,
                created_at=created,
                stage=stage,
                stage_entered_at=entered,
                path=path,
                close_date=close_date,
                close_date_pushes=pushes,
                closed_at=closed_at if decided else None,
                outcome=deal.outcome if decided else None,
            )
        )
    return KnownHistory(as_of=as_of, deals=tuple(known))
