"""The pipeline facts a forecast needs, and history cut to what was known at a moment.

``cut_history`` is the only door to the data for the model and the backtest:
whatever it drops (deals created later, stage and close-date changes made
later, outcomes decided later) cannot leak into a forecast made ``as_of``.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

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
    # Shared by the cuts of one HistoryIndex: the model's per-deal work on decided
    # deals (which later cuts see unchanged); None: nothing kept.
    memo: dict[Any, Any] | None = field(default=None, compare=False, repr=False)
    # Decided deals every later cut of the same index sees as they are (a subset of
    # ``deals``, in the order they settled): the model counts them once across cuts.
    settled: tuple[KnownDeal, ...] = field(default=(), compare=False, repr=False)

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
    return HistoryIndex(deals, changes, close_date_changes).cut(as_of)


class _Indexed(NamedTuple):  # a tuple: 50,000 of them are made per index
    """One deal with its changes sorted once: a cut is a binary search, not a sort."""

    deal: Deal
    created: datetime
    times: tuple[datetime, ...]  # stage changes' moments, oldest first
    path: tuple[tuple[str, datetime], ...]  # (stage, at) in the same order
    date_times: tuple[datetime, ...]  # close-date changes' moments, oldest first
    dates: tuple[date, ...]
    pushes: tuple[int, ...]  # pushes[m]: times the date moved later within the first m changes
    closed_at: datetime | None
    settled_at: datetime  # from then on the deal as known no longer changes


class HistoryIndex:
    """Deals and their stage and close-date changes, sorted once, to cut at many moments.

    ``cut(as_of)`` is :func:`cut_history` (the same deals, in the same order,
    with the same values) without regrouping and resorting the changes each
    time; a deal whose every change and outcome is at or before ``as_of`` is
    built once and shared by later cuts (the backtest cuts in time order).
    The cuts share :attr:`memo`, where the model keeps what it counted of the
    settled decided deals (``KnownHistory.settled``).
    """

    def __init__(
        self,
        deals: Iterable[Deal],
        changes: Iterable[StageChange],
        close_date_changes: Iterable[CloseDateChange] = (),
    ) -> None:
        by_deal: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        for ch in changes:
            by_deal[ch.deal_id].append((utc(ch.entered_at), ch.stage))
        dates_by_deal: dict[str, list[tuple[datetime, date]]] = defaultdict(list)
        for cd in close_date_changes:
            dates_by_deal[cd.deal_id].append((utc(cd.changed_at), cd.close_date))
        rows: list[_Indexed] = []
        for deal in deals:
            created = utc(deal.created_at)
            history = sorted(by_deal.get(deal.deal_id, ()))
            dated = sorted(dates_by_deal.get(deal.deal_id, ()))
            pushes = [0, 0]  # within none and within the first change: no push
            for (_, a), (_, b) in itertools.pairwise(dated):
                pushes.append(pushes[-1] + (b > a))
            closed_at = utc(deal.closed_at) if deal.closed_at is not None else None
            settled = created
            if history:
                settled = max(settled, history[-1][0])
            if dated:
                settled = max(settled, dated[-1][0])
            if deal.outcome is not None and closed_at is not None:
                settled = max(settled, closed_at)
            rows.append(
                _Indexed(
                    deal=deal,
                    created=created,
                    times=tuple(at for at, _ in history),
                    path=tuple((stage, at) for at, stage in history),
                    date_times=tuple(at for at, _ in dated),
                    dates=tuple(d for _, d in dated),
                    pushes=tuple(pushes),
                    closed_at=closed_at,
                    settled_at=settled,
                )
            )
        self._rows = rows
        self._settled: dict[int, KnownDeal] = {}
        self.memo: dict[Any, Any] = {}
        # Decided deals by the moment they stop changing: a cut's settled ones are a prefix.
        decided = sorted(
            (row.settled_at, i)
            for i, row in enumerate(rows)
            if row.deal.outcome is not None and row.closed_at is not None
        )
        self._settle_times = [at for at, _ in decided]
        self._settle_order = [i for _, i in decided]

    def cut(self, as_of: datetime) -> KnownHistory:
        """The history as known at ``as_of``: :func:`cut_history`'s answer."""
        as_of = utc(as_of)
        known: list[KnownDeal] = []
        settled = self._settled
        for i, row in enumerate(self._rows):
            if row.created > as_of:
                continue
            if row.settled_at <= as_of:
                hit = settled.get(i)
                if hit is None:
                    hit = settled[i] = _known(row, as_of)
                known.append(hit)
            else:
                known.append(_known(row, as_of))
        n = bisect_right(self._settle_times, as_of)
        return KnownHistory(
            as_of=as_of,
            deals=tuple(known),
            memo=self.memo,
            settled=tuple(settled[i] for i in self._settle_order[:n]),
        )


def _known(row: _Indexed, as_of: datetime) -> KnownDeal:
    deal = row.deal
    n = bisect_right(row.times, as_of)
    if n:
        path = row.path[:n]
        stage, entered = path[-1]
    else:
        stage, entered = (row.path[0][0], row.created) if row.path else (deal.stage, row.created)
        path = ((stage, entered),)
    closed_at = row.closed_at
    decided = deal.outcome is not None and closed_at is not None and closed_at <= as_of
    close_date = deal.close_date
    pushes = 0
    if row.dates:
        m = bisect_right(row.date_times, as_of)
        close_date = row.dates[m - 1] if m else None
        pushes = row.pushes[m]
    return KnownDeal(
        deal_id=deal.deal_id,
        owner_email=deal.owner_email,
        account_domain=deal.account_domain,
        amount=deal.amount,
        currency=deal.currency,
        created_at=row.created,
        stage=stage,
        stage_entered_at=entered,
        path=path,
        close_date=close_date,
        close_date_pushes=pushes,
        closed_at=closed_at if decided else None,
        outcome=deal.outcome if decided else None,
    )
