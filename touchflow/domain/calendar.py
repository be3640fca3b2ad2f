"""Time zones, send windows, business days and holidays (pure; ``now`` comes in).

The contract, in the prospect's local time:

* a touch may become due only inside the send window (that day's own hours when the window
  gives the day hours of its own, e.g. a Thursday half day), on a window day that is neither
  a public holiday of any of the calendar's holiday countries nor inside a blackout range;
* delays in days keep the local wall-clock time (09:15 stays 09:15 across a DST switch);
  a wall-clock time that does not exist (spring-forward gap) moves forward by the length of
  the gap, an ambiguous one (fall-back) means its first occurrence;
* every datetime going in must be timezone-aware and every datetime coming out is in UTC.

Nothing here reads a clock or does I/O other than reading time-zone data.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers
from phonenumbers import timezone as phone_timezone

#: Window day names in cadence YAML, Monday first (index = ``date.weekday()``).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SendWindow:
    """Local days and hours in which a touch may become due: ``[start, end)``.

    ``day_hours`` gives some days hours of their own, ``(weekday, start, end)``: a Thursday
    half day is ``((3, time(8), time(12)),)``. Each such day must be one of ``days``.
    """

    days: frozenset[int]  # 0 = Monday ... 6 = Sunday
    start: time
    end: time  # strictly after start; windows do not cross midnight
    day_hours: tuple[tuple[int, time, time], ...] = ()

    def hours(self, weekday: int) -> tuple[time, time] | None:
        """``(start, end)`` on that weekday (0 = Monday), or None when it is not a window day."""
        if weekday not in self.days:
            return None
        for day, start, end in self.day_hours:
            if day == weekday:
                return start, end
        return self.start, self.end


@dataclass(frozen=True)
class Blackout:
    """Local dates on which nothing becomes due, ``first`` to ``last`` inclusive.

    ``annual`` ranges repeat every year: only month and day count (the years of ``first`` and
    ``last`` are ignored), and a range may wrap the year end (24 Dec - 2 Jan). ``name`` is
    for people (``Nowruz``), it changes nothing.
    """

    first: date
    last: date
    annual: bool = False
    name: str = ""

    def covers(self, d: date) -> bool:
        """Whether ``d`` lies in the range."""
        if not self.annual:
            return self.first <= d <= self.last
        md = (d.month, d.day)
        lo = (self.first.month, self.first.day)
        hi = (self.last.month, self.last.day)
        return lo <= md <= hi if lo <= hi else (md >= lo or md <= hi)

    def __str__(self) -> str:
        span = (
            f"{self.first:%m-%d}..{self.last:%m-%d} every year"
            if self.annual
            else f"{self.first}..{self.last}"
        )
        return f"{self.name} {span}" if self.name else span


__all__ = [
    "WEEKDAYS",
    "Blackout",
    "BusinessCalendar",
    "SendWindow",
    "country_timezone",
    "resolve_timezone",
    "zone_country",
]

#: How far ahead (in days) we look for a business day before giving up. Ten years is far more
#: than any real calendar needs; the bound only turns a misconfiguration into an error instead
#: of an endless loop.
MAX_SEARCH_DAYS: Final = 3700

_ONE_DAY: Final = timedelta(days=1)
_ONE_MINUTE: Final = timedelta(minutes=1)
_UNKNOWN_ZONE: Final = "Etc/Unknown"

#: Countries whose first zone.tab entry is not where most of their people (and so most of our
#: prospects) live: zone.tab lists zones roughly east to west / by coordinates, so e.g. AU
#: starts with Lord Howe Island and CA with St. John's. These pick the most populous zone.
_PRIMARY_ZONE_OVERRIDES: Final[dict[str, str]] = {
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CN": "Asia/Shanghai",
    "ID": "Asia/Jakarta",
    "MX": "America/Mexico_City",
    "RU": "Europe/Moscow",
    # zone.tab lists Simferopol (Crimea, on Moscow time since 2014) before Kyiv.
    "UA": "Europe/Kyiv",
}

# ---------------------------------------------------------------------------------------------
# Holidays
# ---------------------------------------------------------------------------------------------

# ``holidays`` objects fill themselves in year by year on first ``in``; that mutates shared
# state, so misses are serialised. Hits never take the lock (they are served by lru_cache).
_holiday_lock = threading.Lock()


@cache
def _country_holidays(code: str) -> holidays.HolidayBase:
    """The (lazily expanding) public-holiday table of one country; built once per process."""
    try:
        return holidays.country_holidays(code)
    except NotImplementedError as exc:  # how ``holidays`` reports an unknown country
        raise ValueError(f"unknown holiday country code: {code!r}") from exc


@lru_cache(maxsize=1 << 16)
def _is_holiday(countries: tuple[str, ...], d: date) -> bool:
    # Cached per (countries, date): a tick asks this for the same few dates ~100,000 times.
    with _holiday_lock:
        return any(d in _country_holidays(code) for code in countries)


@cache
def has_holiday_calendar(code: str) -> bool:
    """Whether the ``holidays`` package knows this ISO country code's public holidays."""
    try:
        _country_holidays(code.strip().upper())
    except ValueError:
        return False
    return True


def _normalise_countries(codes: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for raw in codes:
        code = raw.strip().upper()
        if not code:
            raise ValueError(f"empty holiday country code in {codes!r}")
        _country_holidays(code)  # raises ValueError naming an unknown code, now and not later
        seen.setdefault(code, None)
    return tuple(seen)


# ---------------------------------------------------------------------------------------------
# Local wall-clock <-> instants
# ---------------------------------------------------------------------------------------------


def _exists(naive: datetime, aware_utc: datetime, tz: ZoneInfo) -> bool:
    """Whether ``aware_utc`` reads as ``naive`` on the local clock (False inside a DST gap)."""
    return aware_utc.astimezone(tz).replace(tzinfo=None) == naive


def _localize(naive_local: datetime, tz: ZoneInfo) -> datetime:
    """The instant (UTC) at which the clock in ``tz`` shows ``naive_local``.

    Ambiguous wall times (fall-back) mean their first occurrence (``fold=0``). Wall times that
    do not exist (spring-forward gap) move forward by the length of the gap, so 02:30 on the
    day New York skips 02:00-03:00 becomes 03:30: a delay "keeps" as much of the wall-clock
    distance as it can.
    """
    first = naive_local.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    if _exists(naive_local, instant, tz):
        return instant
    # Inside a gap zoneinfo gives fold=0 the offset from before the transition and fold=1 the
    # one after; their difference is the gap length. Spelled out rather than relying on the
    # fold=0 conversion happening to land there.
    after = naive_local.replace(tzinfo=tz, fold=1).utcoffset()
    before = first.utcoffset()
    assert after is not None and before is not None  # ZoneInfo always has an offset
    return (naive_local + (after - before)).replace(tzinfo=tz).astimezone(UTC)


def _transition(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant the UTC offset of ``tz`` changes, given UTC instants on either side of it.

    Transitions in the tz database fall on whole seconds, so a bisection on seconds is exact.
    """
    target = after.astimezone(tz).utcoffset()
    lo, hi = math.floor(before.timestamp()), math.floor(after.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _boundary(d: date, wall: time, tz: ZoneInfo, fold: int = 0) -> datetime:
    """The first instant (UTC) at which the clock in ``tz`` reaches ``wall`` on date ``d``.

    Unlike :func:`_localize`, a wall time inside a DST gap maps to the transition itself: the
    window opening at 02:30 on a day without 02:00-03:00 is open from 03:00 (the moment the
    clock jumps past 02:30), not only from 03:30. ``fold=1`` asks for the second occurrence of
    an ambiguous wall time.
    """
    naive = datetime.combine(d, wall)
    instant = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
    if _exists(naive, instant, tz):
        return instant
    before = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)  # post-gap offset: lands earlier
    after = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)  # pre-gap offset: lands later
    return _transition(tz, before, after)


def _jitter_offset(seed: str, minutes: int) -> int:
    # sha256 rather than hash(): str hashes are salted per process (PYTHONHASHSEED), and the
    # offset must be the same in every worker and after every restart.
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (minutes + 1)


# ---------------------------------------------------------------------------------------------
# The calendar
# ---------------------------------------------------------------------------------------------

_MISSING: Final = object()


class BusinessCalendar:
    """A send window read in one time zone, with public holidays and blackout dates.

    Instances are cheap to query and meant to be kept: per-date answers are memoised on the
    instance (and holiday lookups process-wide), because the scheduler asks the same few dates
    again and again.
    """

    #: Per-instance memo size at which the date caches are simply dropped; keeps a long-lived
    #: calendar that has seen many distinct dates from growing without bound.
    _MEMO_LIMIT: Final = 50_000

    def __init__(
        self,
        tz: ZoneInfo,
        window: SendWindow,
        holiday_countries: Iterable[str] = (),
        blackouts: Iterable[Blackout] = (),
    ) -> None:
        """Build a calendar; raises ValueError for an unusable window or unknown country code."""
        if not isinstance(tz, ZoneInfo):
            raise TypeError(f"tz must be a zoneinfo.ZoneInfo, got {type(tz).__name__}")
        _check_window(window)
        self._tz = tz
        self._window = window
        self._holiday_countries = _normalise_countries(holiday_countries)
        self._blackouts = tuple(blackouts)
        for blackout in self._blackouts:
            if not blackout.annual and blackout.last < blackout.first:
                raise ValueError(f"blackout ends before it starts: {blackout}")
        # Hours per weekday (None: not a window day), so a date costs one tuple index.
        self._weekly: tuple[tuple[time, time] | None, ...] = tuple(
            window.hours(wd) for wd in range(7)
        )
        # date -> that day's (start, end), None when it is not a business day.
        self._hours: dict[date, tuple[time, time] | None] = {}
        self._openings: dict[date, datetime | None] = {}
        # (instant, minutes, offset) -> jittered instant: a tick jitters thousands of
        # enrollments off the same few due instants, and only the offset differs.
        self._jittered: dict[tuple[datetime, int, int], datetime] = {}

    def __repr__(self) -> str:
        w = self._window
        days = ",".join(WEEKDAYS[i] for i in sorted(w.days))
        own = "".join(f" {WEEKDAYS[d]} {s:%H:%M}-{e:%H:%M}" for d, s, e in w.day_hours)
        blackouts = f", blackouts={[str(b) for b in self._blackouts]!r}" if self._blackouts else ""
        return (
            f"BusinessCalendar({self._tz.key!r}, {days} {w.start:%H:%M}-{w.end:%H:%M}{own}, "
            f"holidays={list(self._holiday_countries)!r}{blackouts})"
        )

    def describe(self) -> str:
        """For people: ``Asia/Tehran, sat-wed 08:00-16:00, thu 08:00-12:00; holidays of IR;
        blackouts: Nowruz break 03-20..04-02 every year``."""
        w = self._window
        own = {day: (start, end) for day, start, end in w.day_hours}
        # The week starts on the first open day after a closed one, so an Iranian week reads
        # "sat sun mon tue wed" and a Gulf one "sun mon tue wed thu" (Monday if none is closed).
        first = next((d for d in range(7) if d in w.days and (d - 1) % 7 not in w.days), 0)
        order = [(first + i) % 7 for i in range(7)]
        common = [WEEKDAYS[d] for d in order if d in w.days and d not in own]
        parts = [f"{' '.join(common)} {w.start:%H:%M}-{w.end:%H:%M}"] if common else []
        parts += [f"{WEEKDAYS[d]} {s:%H:%M}-{e:%H:%M}" for d, (s, e) in sorted(own.items())]
        text = f"{self._tz.key}, {', '.join(parts)}"
        if self._holiday_countries:
            text += f"; holidays of {', '.join(self._holiday_countries)}"
        if self._blackouts:
            text += f"; blackouts: {', '.join(map(str, self._blackouts))}"
        return text

    @property
    def tz(self) -> ZoneInfo:
        """The zone whose wall clock the window is read in."""
        return self._tz

    @property
    def window(self) -> SendWindow:
        """The local send window."""
        return self._window

    @property
    def holiday_countries(self) -> tuple[str, ...]:
        """Upper-case ISO 3166 alpha-2 codes whose public holidays block sends."""
        return self._holiday_countries

    @property
    def blackouts(self) -> tuple[Blackout, ...]:
        """Date ranges on which nothing becomes due, whatever the window and holidays say."""
        return self._blackouts

    # -- days ------------------------------------------------------------------------------

    def is_holiday(self, d: date) -> bool:
        """Whether ``d`` is a public holiday in any of the holiday countries."""
        if not self._holiday_countries:
            return False
        return _is_holiday(self._holiday_countries, d)

    def is_blackout(self, d: date) -> bool:
        """Whether ``d`` lies in one of the calendar's blackout ranges."""
        return any(b.covers(d) for b in self._blackouts)

    def _day_hours(self, d: date) -> tuple[time, time] | None:
        """``(start, end)`` of the window on ``d``; None when ``d`` is not a business day."""
        try:
            return self._hours[d]
        except KeyError:
            pass
        hours = self._weekly[d.weekday()]
        if hours is not None and (self.is_blackout(d) or self.is_holiday(d)):
            hours = None
        if len(self._hours) >= self._MEMO_LIMIT:
            self._hours.clear()
        self._hours[d] = hours
        return hours

    def is_business_day(self, d: date) -> bool:
        """Whether ``d`` is a window day that is neither a public holiday nor blacked out."""
        return self._day_hours(d) is not None

    def _next_business_day(self, d: date) -> date:
        """The first business day strictly after ``d``."""
        for _ in range(MAX_SEARCH_DAYS):
            d = _next_date(d)
            if self.is_business_day(d):
                return d
        raise ValueError(f"no business day within {MAX_SEARCH_DAYS} days after {d} ({self!r})")

    def _opening(self, d: date) -> datetime | None:
        """When the window opens on ``d`` (UTC), or None if it does not open that day.

        A business day can still have no window: one lying wholly inside a DST gap, or a day
        the zone skips altogether.
        """
        opening = self._openings.get(d, _MISSING)
        if opening is _MISSING:
            opening = None
            hours = self._day_hours(d)
            if hours is not None:
                candidate = _boundary(d, hours[0], self._tz)
                local = candidate.astimezone(self._tz)
                if local.date() == d and local.time() < hours[1]:
                    opening = candidate
            if len(self._openings) >= self._MEMO_LIMIT:
                self._openings.clear()
            self._openings[d] = opening
        return opening  # type: ignore[return-value]  # _MISSING replaced above

    # -- instants --------------------------------------------------------------------------

    def _local(self, instant: datetime) -> datetime:
        if instant.utcoffset() is None:
            raise ValueError(f"naive datetime not allowed (need a timezone): {instant!r}")
        if instant.tzinfo is self._tz:
            # astimezone() to the same tzinfo is a no-op and would keep a wall time that does
            # not exist (or the wrong fold); going through UTC normalises it.
            instant = instant.astimezone(UTC)
        return instant.astimezone(self._tz)

    def _open_local(self, local: datetime) -> bool:
        hours = self._day_hours(local.date())
        return hours is not None and hours[0] <= local.time() < hours[1]

    def is_open(self, instant: datetime) -> bool:
        """Whether a touch may become due at ``instant`` (aware): inside the local window."""
        return self._open_local(self._local(instant))

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` (in UTC) if the window is open then, else the next window opening.

        The next opening is the window start on the next business day, which is today's if
        the local time is still before the start. (A window ending inside a repeated
        fall-back hour is not reopened by the repetition: days are decided by wall clock.)
        """
        local = self._local(instant)
        d = local.date()
        hours = self._day_hours(d)
        if hours is not None:
            t = local.time()
            if t < hours[1]:
                if t >= hours[0]:
                    return instant.astimezone(UTC)
                opening = self._opening(d)
                if opening is not None:
                    if opening > instant:
                        return opening
                    # Only when ``instant`` is in the second run of a repeated (fall-back)
                    # hour and the start's first occurrence has passed: take the second one.
                    again = _boundary(d, hours[0], self._tz, fold=1)
                    if again > instant and self.is_open(again):
                        return again
        for _ in range(MAX_SEARCH_DAYS):
            d = _next_date(d)
            opening = self._opening(d)
            if opening is not None:
                return opening
        raise ValueError(f"no window opening within {MAX_SEARCH_DAYS} days of {instant} ({self!r})")

    def add_business_days(self, instant: datetime, n: int) -> datetime:
        """The ``n``-th business day after ``instant``'s local date, at the same wall time.

        If that wall time is outside the window the result is the next opening after it
        (e.g. Friday 18:00 + 1 business day -> Monday 18:00 -> Tuesday's start). ``n == 0``
        is :meth:`next_open`. The start day itself need not be a business day.
        """
        if n < 0:
            raise ValueError(f"business days must be >= 0, got {n}")
        if n == 0:
            return self.next_open(instant)
        local = self._local(instant)
        d = local.date()
        for _ in range(n):
            d = self._next_business_day(d)
        return self.next_open(_localize(datetime.combine(d, local.time()), self._tz))

    def add_days(self, instant: datetime, n: int) -> datetime:
        """``n`` calendar days later at the same local wall time, then :meth:`next_open`."""
        if n < 0:
            raise ValueError(f"days must be >= 0, got {n}")
        if n == 0:
            return self.next_open(instant)
        local = self._local(instant)
        try:
            d = local.date() + timedelta(days=n)
        except OverflowError as exc:
            raise ValueError(f"{n} days after {instant} is out of range") from exc
        return self.next_open(_localize(datetime.combine(d, local.time()), self._tz))

    def add_elapsed(self, instant: datetime, delta: timedelta) -> datetime:
        """``instant + delta`` in absolute time (not wall clock), then :meth:`next_open`."""
        if instant.utcoffset() is None:
            raise ValueError(f"naive datetime not allowed (need a timezone): {instant!r}")
        if delta < timedelta(0):
            raise ValueError(f"elapsed delay must be >= 0, got {delta}")
        # Via UTC: aware arithmetic in Python is wall-clock arithmetic within one tzinfo.
        return self.next_open(instant.astimezone(UTC) + delta)

    def apply_jitter(self, instant: datetime, minutes: int, seed: str) -> datetime:
        """Shift an open ``instant`` by a deterministic 0..``minutes`` minutes, staying open.

        The offset comes from sha256(``seed``), so the same seed always gets the same offset.
        If the shifted instant would leave the window (or the local day), the offset is taken
        modulo the whole minutes left until the window closes that day; the result is always
        on the same local date, within ``[instant, instant + minutes]`` and before the close.
        """
        if minutes < 0:
            raise ValueError(f"jitter minutes must be >= 0, got {minutes}")
        offset = _jitter_offset(seed, minutes) if minutes else 0
        memo = (instant, minutes, offset)
        shifted = self._jittered.get(memo)
        if shifted is None:
            shifted = self._shift_within_day(instant, minutes, offset)
            if len(self._jittered) >= self._MEMO_LIMIT:
                self._jittered.clear()
            self._jittered[memo] = shifted
        return shifted

    def _shift_within_day(self, instant: datetime, minutes: int, offset: int) -> datetime:
        """``instant`` moved ``offset`` minutes (of at most ``minutes``), staying open that day."""
        local = self._local(instant)
        if not self._open_local(local):
            raise ValueError(f"apply_jitter needs an instant inside the window: {instant}")
        base = instant.astimezone(UTC)
        if minutes == 0:
            return base
        candidate = base + offset * _ONE_MINUTE
        d = local.date()
        if self._open_same_day(candidate, d):
            return candidate
        hours = self._day_hours(d)
        assert hours is not None  # _open_local(local) held above
        close = _boundary(d, hours[1], self._tz)
        if close <= base:
            # ``instant`` is in the second run of a repeated hour that also holds the end.
            close = _boundary(d, hours[1], self._tz, fold=1)
        # Rounded up: 30 s before the close still leaves "1 minute", i.e. offset 0.
        remaining = max(1, math.ceil((close - base) / _ONE_MINUTE))
        candidate = base + (offset % remaining) * _ONE_MINUTE
        if self._open_same_day(candidate, d):
            return candidate
        # Only reachable when the window start lies in a repeated fall-back hour and the clock
        # turning back leaves the window before the close: no jitter rather than a bad time.
        return base

    def _open_same_day(self, instant: datetime, d: date) -> bool:
        local = instant.astimezone(self._tz)
        return local.date() == d and self._open_local(local)


def _check_window(window: SendWindow) -> None:
    """ValueError unless ``window`` has days, naive times and each day's start before its end."""
    if not window.days or not window.days <= frozenset(range(7)):
        raise ValueError(f"window days must be a non-empty subset of 0..6: {window.days!r}")
    spans = [(None, window.start, window.end), *window.day_hours]
    seen: set[int] = set()
    for day, start, end in spans:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("window start/end are local wall-clock times and must be naive")
        if not start < end:
            raise ValueError(f"window start {start} must be before end {end}")
        if day is not None:
            if day not in window.days:
                raise ValueError(f"day {day} has hours of its own but is not a window day")
            if day in seen:
                raise ValueError(f"day {day} has hours of its own twice")
            seen.add(day)


def _next_date(d: date) -> date:
    try:
        return d + _ONE_DAY
    except OverflowError as exc:
        raise ValueError(f"no date after {d}") from exc


# ---------------------------------------------------------------------------------------------
# Which zone a prospect is in
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo | None:
    """The ZoneInfo for an IANA name, or None if it is not one (cached, misses included)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: malformed key ("", absolute or "../" paths); OSError: e.g. "America",
        # which is a directory of the database rather than a zone.
        return None


def _read_tz_table(name: str) -> str | None:
    """A text file of the tz database: the tzdata package first, else the system copy."""
    try:
        return resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, OSError):
        pass
    try:
        return (Path("/usr/share/zoneinfo") / name).read_text(encoding="utf-8")
    except OSError:
        return None


@lru_cache(maxsize=1)
def _zone_tab() -> tuple[tuple[str, str], ...]:
    """``(ISO alpha-2 code, zone)`` for each line of zone.tab, in its order."""
    text = _read_tz_table("zone.tab") or ""
    rows: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            rows.append((fields[0], fields[2]))
    return tuple(rows)


@lru_cache(maxsize=1)
def _first_zones() -> dict[str, str]:
    """ISO alpha-2 code -> first zone listed for it in zone.tab."""
    first: dict[str, str] = {}
    for code, zone in _zone_tab():
        first.setdefault(code, zone)
    return first


@lru_cache(maxsize=1)
def _zone_links() -> dict[str, str]:
    """Legacy zone name -> canonical name (``Asia/Calcutta`` -> ``Asia/Kolkata``)."""
    text = _read_tz_table("tzdata.zi") or ""
    links: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("L "):
            parts = line.split()
            if len(parts) == 3:
                links[parts[2]] = parts[1]
    return links


@lru_cache(maxsize=512)
def _country_timezone(code: str) -> str | None:
    zone = _PRIMARY_ZONE_OVERRIDES.get(code) or _first_zones().get(code)
    return zone if zone is not None and _zone(zone) is not None else None


def country_timezone(country: str) -> str | None:
    """The main IANA zone of a country (ISO 3166 alpha-2), or None if unknown.

    That is the first zone zone.tab lists for the code, except for a few large countries
    where that zone is a sparsely populated corner (see ``_PRIMARY_ZONE_OVERRIDES``).
    """
    return _country_timezone(country.strip().upper())


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """Zone name -> the ISO alpha-2 code zone.tab lists it under (one country a line)."""
    countries: dict[str, str] = {}
    for code, zone in _zone_tab():
        countries.setdefault(zone, code)
    return countries


def zone_country(zone: str) -> str | None:
    """The country (ISO 3166 alpha-2) of an IANA zone: ``Asia/Tehran`` -> ``IR``.

    Legacy names count (``Asia/Calcutta`` -> ``IN``); None for zones of no one
    country (``UTC``, ``Etc/GMT+3``) and for names that are not zones.
    """
    name = zone.strip()
    countries = _zone_countries()
    # Look the name up before its link target: Europe/Vaduz links to Europe/Zurich but is LI.
    return countries.get(name) or countries.get(_zone_links().get(name, ""))


@lru_cache(maxsize=1 << 16)
def _zone_from_phone(phone: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    zones = phone_timezone.time_zones_for_number(number)
    if not zones or zones == (_UNKNOWN_ZONE,):
        return None
    links = _zone_links()
    # phonenumbers still uses some legacy names (Asia/Calcutta); store the canonical ones.
    canonical = [links.get(z, z) for z in zones if z != _UNKNOWN_ZONE]
    if len(canonical) > 1:
        # Several zones means a non-geographic number (mobile, toll-free: +1 800 gives 42
        # zones, the first being America/Adak); the country's main zone is a better guess
        # than whichever sorts first.
        number_region = phonenumbers.region_code_for_number(number) or region
        main = country_timezone(number_region) if number_region else None
        if main in canonical:
            return main
    for zone in canonical:
        if _zone(zone) is not None:
            return zone
    return None


@lru_cache(maxsize=1 << 16)
def _resolve(
    timezone: str | None, phone: str | None, country: str | None, fallback: str
) -> ZoneInfo:
    if timezone and (zone := _zone(timezone.strip())) is not None:
        return zone
    code = country.strip().upper() if country else None
    if phone and phone.strip():
        region = code if code and len(code) == 2 and code.isalpha() else None
        name = _zone_from_phone(phone.strip(), region)
        if name is not None and (zone := _zone(name)) is not None:
            return zone
    if code and (name := _country_timezone(code)) is not None:
        zone = _zone(name)
        if zone is not None:
            return zone
    zone = _zone(fallback.strip())
    if zone is None:
        raise ValueError(f"fallback time zone is not a valid IANA zone: {fallback!r}")
    return zone


def resolve_timezone(
    timezone: str | None, phone: str | None, country: str | None, fallback: str
) -> ZoneInfo:
    """The zone a prospect's send window is read in.

    In order: the prospect's own IANA ``timezone`` if valid; else the zone of their ``phone``
    number (``country`` is the region hint for numbers without ``+``); else the main zone of
    ``country``; else ``fallback`` (ValueError if that is not a valid zone either).
    """
    return _resolve(timezone, phone, country, fallback)
