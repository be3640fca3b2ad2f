"""Forecast periods: calendar months (``2027-01``) and quarters (``2027-Q1``), in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal

Granularity = Literal["month", "quarter"]
GRANULARITIES: tuple[Granularity, ...] = ("month", "quarter")


@dataclass(frozen=True, order=True)
class Period:
    """``[start, end)``: ``end`` is the first day of the next period."""

    start: date
    end: date
    label: str

    @property
    def last_day(self) -> date:
        """The period's last day (what a report prints as its end)."""
        return self.end - timedelta(days=1)

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(), UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time(), UTC)

    def contains(self, moment: datetime) -> bool:
        return self.start_at <= moment < self.end_at


def _check(kind: str) -> None:
    if kind not in GRANULARITIES:
        raise ValueError(f"period must be 'month' or 'quarter', not {kind!r}")


@lru_cache(maxsize=4096)  # the forecast asks for the same days' periods over and over
def period_containing(day: date, kind: Granularity) -> Period:
    """The month or quarter that ``day`` falls in."""
    _check(kind)
    if kind == "month":
        start = date(day.year, day.month, 1)
        end = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        return Period(start, end, f"{day.year}-{day.month:02d}")
    q = (day.month - 1) // 3
    start = date(day.year, 3 * q + 1, 1)
    end = date(day.year + (q == 3), (3 * q + 3) % 12 + 1, 1)
    return Period(start, end, f"{day.year}-Q{q + 1}")


def following(period: Period, kind: Granularity) -> Period:
    """The period right after ``period``."""
    return period_containing(period.end, kind)


def periods_from(day: date, kind: Granularity, count: int) -> list[Period]:
    """``count`` consecutive periods, the first one containing ``day``."""
    out = [period_containing(day, kind)]
    while len(out) < count:
        out.append(following(out[-1], kind))
    return out


def periods_starting_between(first: date, last: date, kind: Granularity) -> list[Period]:
    """Every period whose first day is in ``[first, last]`` (both included)."""
    p = period_containing(first, kind)
    if p.start < first:
        p = following(p, kind)
    out: list[Period] = []
    while p.start <= last:
        out.append(p)
        p = following(p, kind)
    return out


def utc(moment: datetime) -> datetime:
    """An aware datetime; a naive one is read as UTC (how the CSV import stores them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
