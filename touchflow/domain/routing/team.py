"""``config/team.yaml``: who can receive leads (pure)::

    working_hours: {timezone: America/New_York, days: [mon, tue, wed, thu, fri],
                    start: "09:00", end: "17:00"}          # default for members without their own
    members:
      - email: ana@yourco.com
        name: Ana Souza
        role: ae                       # ae | sdr
        crm_owner_id: "0055e000001AbCd"
        territories: [na]              # region names (lowercase) and/or ISO codes (uppercase)
        segments: [enterprise]         # smb | mid | enterprise
        weight: 2                      # > 0, default 1: Ana gets twice Ben's share
        daily_capacity: 12             # at most 12 new leads per local day; omit for no cap
        pto: [2026-07-03, {from: 2026-08-10, to: 2026-08-14}]
        working_hours: {timezone: America/Chicago, days: [mon, tue, wed, thu, fri],
                        start: "08:00", end: "17:00"}
        active: true
        mailbox: {from: ana.souza@yourco.com, title: ..., smtp: {...}, imap: {...}}
                                       # optional: see :mod:`.mailbox`
        quota: {period: quarter, amount: 250000, currency: USD}
                                       # or a list: [{period: 2027-Q1, amount: 300000},
                                       #             {period: quarter, amount: 250000}]

The models below validate it; :mod:`touchflow.domain.routing.loader` reads it.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cached_property
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from touchflow.domain.cadence import _check_zone
from touchflow.domain.calendar import WEEKDAYS, BusinessCalendar, SendWindow
from touchflow.domain.calendars import TimeOfDay, Weekday
from touchflow.domain.model_findings import at as _at
from touchflow.domain.routing.fields import ConfigModel, Email, Role, Segment, Territory
from touchflow.domain.routing.mailbox import Mailbox
from touchflow.domain.yaml_source import YamlDocument

__all__ = ["Member", "Quota", "TeamConfig"]

_QUOTA_PERIOD = re.compile(r"^(?P<year>\d{4})-(?:Q(?P<q>[1-4])|(?P<m>0[1-9]|1[0-2]))$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _one_day_or_range(value: Any) -> Any:
    return value if isinstance(value, dict) else {"from": value, "to": value}


class WorkingHours(ConfigModel):
    """A member's working days and hours ``[start, end)`` in their time zone."""

    timezone: str
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    start: TimeOfDay
    end: TimeOfDay

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if not self.days:
            raise _at("working hours need at least one day", "days")
        if self.end <= self.start:
            raise _at(f"end {self.end:%H:%M} must be after start {self.start:%H:%M}", "end")
        return self

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def calendar(self) -> BusinessCalendar:
        window = SendWindow(
            days=frozenset(WEEKDAYS.index(d) for d in self.days), start=self.start, end=self.end
        )
        return BusinessCalendar(self.tz, window)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {','.join(self.days)} {self.timezone}"


_DEFAULT_HOURS = {"timezone": "UTC", "start": "09:00", "end": "17:00"}


class Pto(ConfigModel):
    """Days off, both ends included; a bare date in YAML is a one-day range."""

    from_: date = Field(alias="from")
    to: date

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to < self.from_:
            raise _at(f"PTO ends ({self.to}) before it starts ({self.from_})", "to")
        return self


class Quota(ConfigModel):
    """A quota: every ``month`` or ``quarter``, or one period (``2027-Q1``, ``2027-03``)."""

    period: str
    amount: float = Field(ge=0)
    currency: str = "USD"

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if value not in ("month", "quarter") and not _QUOTA_PERIOD.match(value):
            raise ValueError(
                f"{value!r} is not a period: month, quarter, YYYY-Qn (2027-Q1) or YYYY-MM"
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError(f"{value!r} is not an ISO currency code (e.g. USD)")
        return value

    @property
    def kind(self) -> str:
        """``month`` or ``quarter``: the length of the period."""
        if self.period in ("month", "quarter"):
            return self.period
        return "quarter" if "Q" in self.period else "month"

    def span(self, day: date) -> tuple[date, date] | None:
        """The ``[start, end)`` of this quota's period that holds ``day``; None if it does not."""
        months = 3 if self.kind == "quarter" else 1
        first = (day.month - 1) // months * months + 1
        start = date(day.year, first, 1)
        nxt = first + months
        end = date(day.year + (nxt - 1) // 12, (nxt - 1) % 12 + 1, 1)
        if self.period in ("month", "quarter") or self.period == period_label(start, self.kind):
            return start, end
        return None


def period_label(start: date, kind: str) -> str:
    """``2027-Q1`` or ``2027-03``: the name of the period starting at ``start``."""
    if kind == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}-{start.month:02d}"


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class Member(ConfigModel):
    """One person who can receive leads."""

    email: Email
    name: str
    role: Role = "ae"
    crm_owner_id: str | None = None
    territories: list[Territory] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    weight: float = Field(default=1.0, gt=0)
    daily_capacity: int | None = Field(default=None, ge=0)
    pto: list[Annotated[Pto, BeforeValidator(_one_day_or_range)]] = Field(default_factory=list)
    working_hours: WorkingHours | None = None
    active: bool = True
    mailbox: Mailbox | None = None  # who their email goes out as, and how
    # Their manager's email: on the dashboard, that manager sees this member's numbers.
    manager: Email | None = None
    # One quota (every month/quarter) or several (one period each, and a default).
    quota: Annotated[list[Quota], BeforeValidator(_one_or_many)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _quotas(self) -> Self:
        seen: dict[str, int] = {}
        for i, q in enumerate(self.quota):
            if q.period in seen:
                raise _at(f"period {q.period!r} has two quotas (also #{seen[q.period] + 1})",
                          "quota", i, "period")  # fmt: skip
            seen[q.period] = i
        return self

    def quota_for(self, day: date) -> tuple[Quota, date, date] | None:
        """The quota whose period holds ``day`` with that period's ``[start, end)``:
        the first listed named period (``2027-Q1``) holding it, else the recurring
        one (``quarter``); None without one."""
        for recurring in (False, True):
            for q in self.quota:
                if (q.period in ("month", "quarter")) != recurring:
                    continue
                span = q.span(day)
                if span is not None:
                    return q, *span
        return None

    @property
    def from_address(self) -> str | None:
        """The address their email goes out from; None without a mailbox."""
        if self.mailbox is None:
            return None
        return self.mailbox.from_ or self.email

    def on_pto(self, day: date) -> Pto | None:
        """The PTO range that covers ``day`` (a local date), if any."""
        return next((p for p in self.pto if p.from_ <= day <= p.to), None)


class TeamConfig(ConfigModel):
    """``config/team.yaml``: the members and the default working hours."""

    working_hours: WorkingHours = Field(
        default_factory=lambda: WorkingHours.model_validate(_DEFAULT_HOURS)
    )
    members: list[Member]

    _doc: YamlDocument | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: dict[str, int] = {}
        for i, m in enumerate(self.members):
            if m.email in seen:
                raise _at(
                    f"{m.email} is listed twice (also member #{seen[m.email] + 1})",
                    "members",
                    i,
                    "email",
                )
            seen[m.email] = i
        senders: dict[str, int] = {}
        for i, m in enumerate(self.members):
            sender = m.from_address
            if sender is None:
                continue
            if sender in senders:
                other = self.members[senders[sender]].email
                raise _at(
                    f"{sender} already sends for {other}: one mailbox, one member",
                    "members",
                    i,
                    "mailbox",
                )
            senders[sender] = i
        return self

    def member(self, email: str | None) -> Member | None:
        if not email:
            return None
        return self.by_email.get(email.strip().lower())

    @cached_property
    def by_email(self) -> dict[str, Member]:
        return {m.email: m for m in self.members}

    def hours(self, member: Member) -> WorkingHours:
        return member.working_hours or self.working_hours
