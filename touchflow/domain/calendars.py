"""Send windows, blackout dates and shared calendars as people write them in YAML (pure).

A cadence's ``schedule`` and the shared ``config/calendars.yaml`` use the same pieces::

    # cadences/mena-outbound.yaml (schedule only)
    schedule:
      window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}  # the default
      windows:                                  # per prospect country (ISO 3166 alpha-2)
        IR: {days: [sat, sun, mon, tue, wed, thu], start: "08:00", end: "16:00",
             thu: "08:00-12:00"}                # a day with hours of its own
        AE: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00"}
      blackouts:                                # no touch on these local dates
        - {name: Company offsite, from: 2027-01-12, to: 2027-01-14}
        - 2026-12-24                            # one date
      calendars: [company, nowruz]              # named calendars of config/calendars.yaml

    # config/calendars.yaml
    calendars:
      nowruz:
        blackouts:
          - {name: Nowruz break, from: 03-20, to: 04-02, countries: [IR]}   # every year
        windows:
          IR: {days: [sat, sun, mon, tue, wed], start: "08:00", end: "16:00"}

Which window a prospect gets (:class:`ScheduleRules`): the cadence's own ``windows`` entry
for the prospect's country, else the first named calendar (in the order named) that has
one, else ``window``. Blackouts add up: the cadence's own and those of every named
calendar, each limited to its ``countries`` when it lists some.

Windows are keyed by country code only, not by the region names of ``config/routing.yaml``:
those regions overlap (a Gulf country can sit in both ``mena`` and ``emea``), and a window
must be unambiguous. YAML anchors share one window between countries
(``AE: &gulf {...}`` then ``SA: *gulf``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Annotated, Any, NamedTuple, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from touchflow.domain.calendar import WEEKDAYS, Blackout, SendWindow, country_timezone
from touchflow.domain.model_findings import at as _at
from touchflow.domain.model_findings import (
    findings_of,
    model_from_yaml,
    reported_as,
)
from touchflow.errors import ConfigFileError, Finding

__all__ = [
    "BlackoutSpec",
    "CalendarSpec",
    "CalendarsFile",
    "CountryCode",
    "ScheduleRules",
    "TimeOfDay",
    "Weekday",
    "WindowSpec",
    "calendar_findings",
    "calendars_from_yaml",
]

#: Cadence ids and calendar names: lowercase letters and digits joined by '-'.
KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
#: The year annual blackouts are kept in: a leap year, so ``02-29`` is a valid day.
_ANNUAL_YEAR = 2000


def _parse_hhmm(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = _HHMM.match(value.strip())
        if match:
            return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f'{value!r} is not a time of day: use HH:MM, 24-hour (e.g. "17:30")')


def _check_weekday(value: str) -> str:
    day = value.lower()
    if day not in WEEKDAYS:
        raise ValueError(f"{value!r} is not a day: use {', '.join(WEEKDAYS)}")
    return day


def _parse_day_hours(value: Any) -> Any:
    """``"08:00-12:00"`` -> ``(time(8), time(12))``."""
    if isinstance(value, str) and value.count("-") == 1:
        start, end = (_parse_hhmm(part) for part in value.split("-"))
        if end <= start:
            raise ValueError(
                f"{value!r}: the end must be after the start (hours do not cross midnight)"
            )
        return (start, end)
    raise ValueError(f'{value!r} is not a span of hours: use "HH:MM-HH:MM" (e.g. "08:00-12:00")')


def _check_country(value: str) -> str:
    if _COUNTRY.match(value) and country_timezone(value) is not None:
        return value
    if _COUNTRY.match(value.upper()) and country_timezone(value.upper()) is not None:
        raise ValueError(f"{value!r} is not an ISO country code (did you mean {value.upper()!r}?)")
    if _COUNTRY.match(value):
        raise ValueError(f"{value!r} is not a known ISO 3166 country code")
    if KEBAB.match(value):
        raise ValueError(
            f"{value!r} is not an ISO country code (two capital letters, e.g. 'AE'); "
            "windows and blackouts are per country, region names are not supported"
        )
    raise ValueError(f"{value!r} is not an ISO country code (two capital letters, e.g. 'IR')")


def _check_name(value: str) -> str:
    if not KEBAB.match(value):
        raise ValueError(
            f"{value!r} must be kebab-case (lowercase letters and digits joined by '-')"
        )
    return value


TimeOfDay = Annotated[time, BeforeValidator(_parse_hhmm)]
Weekday = Annotated[str, AfterValidator(_check_weekday)]
DayHours = Annotated[tuple[time, time], BeforeValidator(_parse_day_hours)]
CountryCode = Annotated[str, AfterValidator(_check_country)]
CalendarName = Annotated[str, AfterValidator(_check_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WindowSpec(_Model):
    """Local days and hours in which touches may become due, ``[start, end)``.

    A day key (``thu: "08:00-12:00"``) gives that day hours of its own; the day must be
    one of ``days``.
    """

    days: list[Weekday]
    start: TimeOfDay
    end: TimeOfDay
    mon: DayHours | None = None
    tue: DayHours | None = None
    wed: DayHours | None = None
    thu: DayHours | None = None
    fri: DayHours | None = None
    sat: DayHours | None = None
    sun: DayHours | None = None

    @field_validator("days")
    @classmethod
    def _some_days(cls, days: list[str]) -> list[str]:
        if not days:
            raise ValueError("a send window needs at least one day")
        return days

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.end <= self.start:
            raise _at(
                f"window end {self.end:%H:%M} must be after start {self.start:%H:%M} "
                "(windows do not cross midnight)",
                "end",
            )
        for day in WEEKDAYS:
            if getattr(self, day) is not None and day not in self.days:
                raise _at(
                    f"{day} has hours of its own but is not one of the window's days "
                    f"(add it to days)",
                    day,
                    key=True,
                )
        return self

    def to_send_window(self) -> SendWindow:
        """The calendar's view of this window (weekday numbers, Monday = 0)."""
        own = tuple(
            (i, hours[0], hours[1])
            for i, day in enumerate(WEEKDAYS)
            if (hours := getattr(self, day)) is not None
        )
        return SendWindow(
            days=frozenset(WEEKDAYS.index(d) for d in self.days),
            start=self.start,
            end=self.end,
            day_hours=own,
        )


class _Day(NamedTuple):
    """A blackout bound: a date, or a month and day every year (kept in a leap year)."""

    day: date
    annual: bool


def _parse_blackout_day(value: Any) -> Any:
    if isinstance(value, _Day):
        return value
    # YAML reads an unquoted 2026-03-20 as a date (and 2026-03-20 10:00 as a datetime).
    if isinstance(value, date) and not isinstance(value, datetime):
        return _Day(value, annual=False)
    if isinstance(value, str):
        text = value.strip()
        match = _MONTH_DAY.match(text)
        try:
            if match:
                return _Day(date(_ANNUAL_YEAR, int(match[1]), int(match[2])), annual=True)
            return _Day(date.fromisoformat(text), annual=False)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD, or MM-DD for every year")


BlackoutDay = Annotated[_Day, BeforeValidator(_parse_blackout_day)]


class BlackoutSpec(_Model):
    """Local dates, ``from`` to ``to`` inclusive, on which nothing becomes due.

    ``YYYY-MM-DD`` bounds are one range; ``MM-DD`` bounds repeat every year and may wrap
    the year end. ``countries`` limits the range to prospects of those countries. A bare
    date (``- 2026-12-24``) is a one-day blackout.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    first: BlackoutDay = Field(alias="from")
    last: BlackoutDay | None = Field(default=None, alias="to")
    countries: list[CountryCode] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_date(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {"from": value}

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        last = self.last
        if last is None:
            return self
        if last.annual != self.first.annual:
            raise _at(
                "from and to must both be YYYY-MM-DD (one range) or both MM-DD (every year)",
                "to",
            )
        if not last.annual and last.day < self.first.day:
            raise _at(f"to ({last.day}) is before from ({self.first.day})", "to")
        return self

    def to_blackout(self) -> Blackout:
        """The calendar's view of this range."""
        last = self.last or self.first
        return Blackout(self.first.day, last.day, annual=self.first.annual, name=self.name or "")


class CalendarSpec(_Model):
    """One named calendar of ``config/calendars.yaml``: blackouts and windows by country."""

    description: str | None = None
    blackouts: list[BlackoutSpec] = Field(default_factory=list)
    windows: dict[CountryCode, WindowSpec] = Field(default_factory=dict)


class CalendarsFile(_Model):
    """``config/calendars.yaml``: ``calendars: {name: calendar}``."""

    calendars: dict[CalendarName, CalendarSpec] = Field(default_factory=dict)


# ---------------------------------------------------------------------------- loading


@reported_as(ConfigFileError)
def calendars_from_yaml(text: str, path: str = "config/calendars.yaml") -> CalendarsFile:
    """Validate ``calendars.yaml`` text; raises ConfigFileError with every ``file:line:col``."""
    return model_from_yaml(
        CalendarsFile, text, path,
        not_a_mapping="calendars.yaml must be a mapping: calendars:", empty_is_default=True,
    )[0]  # fmt: skip


def calendar_findings(text: str, path: str) -> list[Finding]:
    """Every problem of a ``calendars.yaml`` text (empty when it is valid)."""
    return findings_of(calendars_from_yaml, text, path)


# ---------------------------------------------------------------------------- resolving


class ScheduleRules:
    """Which window and blackouts a schedule gives a prospect of a given country.

    Built once per cadence runtime; answers are memoised per country. :meth:`key` folds
    every country the schedule says nothing special about into ``None``, so callers that
    memoise calendars per key keep one calendar for all of them.
    """

    def __init__(
        self,
        window: WindowSpec,
        windows: Mapping[str, WindowSpec] | None = None,
        blackouts: Sequence[BlackoutSpec] = (),
        calendars: Iterable[CalendarSpec] = (),
    ) -> None:
        """``windows``/``blackouts``: the cadence's own; ``calendars``: named, in order."""
        by_country: dict[str, WindowSpec] = dict(windows or {})
        every: list[BlackoutSpec] = list(blackouts)
        for calendar in calendars:
            for code, spec in calendar.windows.items():
                by_country.setdefault(code, spec)  # the first that names a country wins
            every.extend(calendar.blackouts)
        self._default = window.to_send_window()
        self._windows = {code: spec.to_send_window() for code, spec in by_country.items()}
        self._blackouts = [
            (frozenset(b.countries) if b.countries else None, b.to_blackout()) for b in every
        ]
        self._special = frozenset(self._windows).union(
            *(codes for codes, _ in self._blackouts if codes is not None)
        )
        self._memo: dict[str | None, tuple[SendWindow, tuple[Blackout, ...]]] = {}

    def key(self, country: str | None) -> str | None:
        """``country`` when the schedule treats it specially, else None (the default rules)."""
        return country if country in self._special else None

    def rules(self, key: str | None) -> tuple[SendWindow, tuple[Blackout, ...]]:
        """The window and blackouts for a :meth:`key`."""
        found = self._memo.get(key)
        if found is None:
            window = self._windows.get(key, self._default) if key else self._default
            blackouts = tuple(b for codes, b in self._blackouts if codes is None or key in codes)
            found = self._memo[key] = (window, blackouts)
        return found
