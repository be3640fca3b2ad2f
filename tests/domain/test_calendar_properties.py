"""Property tests of touchflow.domain.calendar against a slow, independent reference.

The reference below re-derives every answer from first principles (fresh ``holidays`` objects,
minute-by-minute scans around DST gaps, both folds tried explicitly, a day's own hours and the
blackout ranges read straight from the inputs) so that it shares no code or caches with the
implementation. Instants are drawn both uniformly over 2024-2029 and close
to the DST transitions of the drawn zone, where the interesting cases are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from touchflow.domain.calendar import Blackout, BusinessCalendar, SendWindow

ZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Europe/London",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "America/Sao_Paulo",
    "UTC",
)
COUNTRIES = ("US", "DE", "FR", "GB", "JP", "IN", "BR", "AU", "CA", "IR")
FIRST = datetime(2024, 1, 1, tzinfo=UTC)
LAST = datetime(2029, 12, 31, 23, 59, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# -- reference ------------------------------------------------------------------------------


@cache
def ref_country(code: str) -> holidays.HolidayBase:
    return holidays.country_holidays(code)


@dataclass(frozen=True)
class Ref:
    """The contract, computed the slow and obvious way."""

    tz: ZoneInfo
    window: SendWindow
    countries: tuple[str, ...]
    blackouts: tuple[tuple[date, date], ...] = ()

    def business(self, d: date) -> bool:
        if d.weekday() not in self.window.days:
            return False
        if any(first <= d <= last for first, last in self.blackouts):
            return False
        return not any(d in ref_country(c) for c in self.countries)

    def start(self, d: date) -> time:
        own = {day: start for day, start, _ in self.window.day_hours}
        return own.get(d.weekday(), self.window.start)

    def end(self, d: date) -> time:
        own = {day: end for day, _, end in self.window.day_hours}
        return own.get(d.weekday(), self.window.end)

    def wall(self, u: datetime) -> datetime:
        return u.astimezone(self.tz).replace(tzinfo=None)

    def is_open(self, u: datetime) -> bool:
        local = u.astimezone(self.tz)
        d = local.date()
        return self.start(d) <= local.time() < self.end(d) and self.business(d)

    def occurrences(self, naive: datetime) -> list[datetime]:
        """Every UTC instant at which the local clock shows ``naive`` (0, 1 or 2 of them)."""
        found = set()
        for fold in (0, 1):
            u = naive.replace(tzinfo=self.tz, fold=fold).astimezone(UTC)
            if self.wall(u) == naive:
                found.add(u)
        return sorted(found)

    def localize(self, naive: datetime) -> datetime:
        found = self.occurrences(naive)
        if found:
            return found[0]
        # In a gap: move forward by the gap, i.e. the offset change around that day.
        after = (naive + DAY).replace(tzinfo=self.tz).utcoffset()
        before = (naive - DAY).replace(tzinfo=self.tz).utcoffset()
        assert after is not None and before is not None and after > before
        return self.localize(naive + (after - before))

    def reaches(self, d: date, wall: time) -> list[datetime]:
        """Instants at which the clock reaches ``wall`` on ``d``; in a gap, the jump over it."""
        naive = datetime.combine(d, wall)
        found = self.occurrences(naive)
        if found:
            return found
        u = naive.replace(tzinfo=self.tz, fold=1).astimezone(UTC).replace(second=0, microsecond=0)
        while self.wall(u) < naive:  # transitions fall on whole minutes in these years
            u += MINUTE
        return [u]

    def opening(self, d: date) -> datetime | None:
        if not self.business(d):
            return None
        u = self.reaches(d, self.start(d))[0]
        local = u.astimezone(self.tz)
        return u if local.date() == d and self.is_open(u) else None

    def next_open(self, u: datetime) -> datetime:
        u = u.astimezone(UTC)
        if self.is_open(u):
            return u
        local = u.astimezone(self.tz)
        d = local.date()
        if self.business(d) and local.time() < self.start(d):
            for cand in self.reaches(d, self.start(d)):
                if cand > u and cand.astimezone(self.tz).date() == d and self.is_open(cand):
                    return cand
        for _ in range(800):
            d += DAY
            opening = self.opening(d)
            if opening is not None:
                return opening
        raise AssertionError("reference found no opening")

    def nth_business_day(self, d: date, n: int) -> date:
        for _ in range(n):
            d += DAY
            while not self.business(d):
                d += DAY
        return d


# -- strategies -----------------------------------------------------------------------------


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """UTC instants in 2024-2029 at which ``zone`` changes its offset."""
    tz = ZoneInfo(zone)
    found = []
    u = FIRST
    while u < LAST:
        nxt = u + DAY
        if u.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            lo, hi = u, nxt
            while hi - lo > MINUTE:
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset():
                    hi = mid
                else:
                    lo = mid
            found.append(hi.replace(second=0, microsecond=0))
        u = nxt
    return tuple(found)


INTERESTING_MINUTES = (0, 30, 60, 90, 105, 120, 135, 150, 165, 180, 210, 240, 480, 540, 1020)
ALL_DAYS = frozenset(range(7))


def minute_of_day(low: int, pivot: int | None) -> st.SearchStrategy[int]:
    """A minute of the day >= ``low``; often a round one, or near ``pivot`` (a DST switch)."""
    options = [st.integers(low, 1439)]
    interesting = [m for m in INTERESTING_MINUTES if m >= low]
    if interesting:
        options.append(st.sampled_from(interesting))
    if pivot is not None and pivot + 90 >= low:
        options.append(st.integers(max(low, pivot - 90), min(1439, pivot + 90)))
    return st.one_of(*options)


@st.composite
def windows(
    draw: st.DrawFn, pivot: int | None = None, weekday: int | None = None, tight: bool = False
) -> SendWindow:
    """Send windows; given a DST switch at local minute ``pivot`` on ``weekday``, often one
    with an edge in its gap or repeated hour, open on that day (always so if ``tight``)."""
    days = draw(st.one_of(st.frozensets(st.integers(0, 6), min_size=1), st.just(ALL_DAYS)))
    if weekday is not None and (tight or draw(st.booleans())):
        days |= {weekday}
    if tight and pivot is not None:
        start = draw(st.integers(max(0, pivot - 90), min(1438, pivot + 90)))
        end = min(1439, start + draw(st.integers(1, 150)))
    else:
        start = draw(minute_of_day(0, pivot).filter(lambda m: m < 1439))
        end = draw(st.one_of(minute_of_day(start + 1, pivot), st.integers(start + 1, start + 120)))
        end = min(end, 1439)
    # Some days with hours of their own (a Thursday half day), pivot-aware like the default.
    own = []
    for day in sorted(draw(st.sets(st.sampled_from(sorted(days)), max_size=2))):
        day_start = draw(minute_of_day(0, pivot).filter(lambda m: m < 1439))
        day_end = min(1439, day_start + draw(st.integers(1, 600)))
        own.append((day, time(*divmod(day_start, 60)), time(*divmod(day_end, 60))))
    return SendWindow(days, time(*divmod(start, 60)), time(*divmod(end, 60)), day_hours=tuple(own))


@dataclass(frozen=True)
class Case:
    cal: BusinessCalendar
    ref: Ref
    instant: datetime
    #: Local date of a DST switch the instant was placed some days before, if any.
    switch_day: date | None = None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    near = transitions(zone)
    modes = ["uniform", "near", "days before", "edge"] if near else ["uniform"]
    mode = draw(st.sampled_from(modes))
    switch_day = None
    if mode == "uniform":
        naive = draw(st.datetimes(FIRST.replace(tzinfo=None), LAST.replace(tzinfo=None)))
        u = naive.replace(tzinfo=UTC)
        window = draw(windows())
    else:
        switch = draw(st.sampled_from(near))
        if mode == "edge":  # right at the switch, window edges in the gap / repeated hour
            minutes = draw(st.integers(-120, 120))
        else:
            minutes = draw(st.one_of(st.integers(-36 * 60, 36 * 60), st.integers(-150, 150)))
        u = switch + minutes * MINUTE
        u += timedelta(seconds=draw(st.sampled_from([0, 0, 0, 1, 30, 59])))
        # The wall clock just before the switch: gaps start, repeated hours end, there.
        before = (switch - MINUTE).astimezone(tz)
        pivot = before.hour * 60 + before.minute + 1
        if mode == "days before":  # so that day arithmetic lands near the switch
            u -= draw(st.integers(1, 20)) * DAY
            switch_day = before.date()
        window = draw(windows(pivot, before.weekday(), tight=mode == "edge"))
    countries = tuple(draw(st.sets(st.sampled_from(COUNTRIES), max_size=3)))
    # Blackout ranges around the instant, so that they meet the answers (and DST switches).
    around = u.astimezone(tz).date()
    ranges = tuple(
        (first, first + draw(st.integers(0, 12)) * DAY)
        for first in draw(
            st.lists(st.integers(-10, 25).map(lambda k: around + k * DAY), max_size=2)
        )
    )
    # The same instant handed over in UTC, in the calendar's own zone or at a fixed offset.
    shown_in = draw(st.sampled_from(["utc", "local", "offset"]))
    if shown_in == "local":
        u = u.astimezone(tz)
    elif shown_in == "offset":
        u = u.astimezone(timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60)))))
    cal = BusinessCalendar(tz, window, countries, [Blackout(a, b) for a, b in ranges])
    return Case(cal, Ref(tz, window, countries, ranges), u, switch_day)


def day_counts(case: Case, limit: int) -> st.SearchStrategy[int]:
    """Calendar-day counts up to ``limit``; often exactly the distance to the DST switch."""
    counts = st.integers(0, limit)
    if case.switch_day is None:
        return counts
    distance = (case.switch_day - case.instant.astimezone(case.ref.tz).date()).days
    return st.one_of(counts, st.just(distance)) if 0 <= distance <= limit else counts


def business_day_counts(case: Case, limit: int) -> st.SearchStrategy[int]:
    """Business-day counts up to ``limit``; often exactly those up to the DST switch."""
    counts = st.integers(0, limit)
    if case.switch_day is None:
        return counts
    d, n = case.instant.astimezone(case.ref.tz).date(), 0
    while d < case.switch_day:
        d += DAY
        n += case.ref.business(d)
    return st.one_of(counts, st.just(n)) if n <= limit else counts


def assert_valid_result(case: Case, result: datetime) -> None:
    """Every answer: UTC, inside the window in local time, on a business day (no holiday)."""
    assert result.tzinfo is UTC
    assert case.ref.is_open(result)
    local = result.astimezone(case.ref.tz)
    assert case.ref.business(local.date())
    assert case.ref.start(local.date()) <= local.time() < case.ref.end(local.date())


# -- properties -----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases())
def test_is_open_matches_reference(case: Case) -> None:
    assert case.cal.is_open(case.instant) == case.ref.is_open(case.instant)


@PROPERTY_SETTINGS
@given(cases())
def test_next_open(case: Case) -> None:
    t = case.instant.astimezone(UTC)
    result = case.cal.next_open(case.instant)
    assert_valid_result(case, result)
    assert result >= t
    assert (result == t) == case.ref.is_open(t)
    assert result == case.ref.next_open(t)
    # No window opening was skipped: days strictly between have none, and on the same day we
    # only waited if the window had not started yet.
    tz = case.ref.tz
    t_local, r_local = t.astimezone(tz), result.astimezone(tz)
    d = t_local.date() + DAY
    while d < r_local.date():
        assert case.ref.opening(d) is None
        d += DAY
    if result != t and r_local.date() == t_local.date():
        assert t_local.time() < case.ref.start(t_local.date())


@PROPERTY_SETTINGS
@given(cases(), st.data())
def test_add_business_days(case: Case, data: st.DataObject) -> None:
    n = data.draw(business_day_counts(case, 15), label="n")
    ref = case.ref
    t = case.instant.astimezone(UTC)
    result = case.cal.add_business_days(case.instant, n)
    assert_valid_result(case, result)
    local = t.astimezone(ref.tz)
    landing = ref.nth_business_day(local.date(), n)
    if n == 0:
        expected = ref.next_open(t)
    else:
        expected = ref.next_open(ref.localize(datetime.combine(landing, local.time())))
        assert result > t
    assert result == expected
    # Business days counted in (t's date, result's date]: at least n, exactly n if the wall
    # time fits the window on the landing day.
    r_date = result.astimezone(ref.tz).date()
    counted = sum(
        ref.business(local.date() + i * DAY) for i in range(1, (r_date - local.date()).days + 1)
    )
    assert counted >= n
    kept = ref.localize(datetime.combine(landing, local.time()))
    if n > 0 and ref.is_open(kept):
        assert result == kept
        assert counted == n


@PROPERTY_SETTINGS
@given(cases(), st.data())
def test_add_days(case: Case, data: st.DataObject) -> None:
    n = data.draw(day_counts(case, 20), label="n")
    ref = case.ref
    t = case.instant.astimezone(UTC)
    result = case.cal.add_days(case.instant, n)
    assert_valid_result(case, result)
    local = t.astimezone(ref.tz)
    if n == 0:
        expected = ref.next_open(t)
    else:
        kept = ref.localize(datetime.combine(local.date() + n * DAY, local.time()))
        expected = ref.next_open(kept)
    assert result == expected


@PROPERTY_SETTINGS
@given(cases(), st.integers(0, 20 * 24 * 60))
def test_add_elapsed(case: Case, minutes: int) -> None:
    t = case.instant.astimezone(UTC)
    result = case.cal.add_elapsed(case.instant, minutes * MINUTE)
    assert_valid_result(case, result)
    assert result >= t + minutes * MINUTE
    assert result == case.ref.next_open(t + minutes * MINUTE)


@PROPERTY_SETTINGS
@given(cases(), st.integers(0, 180), st.text(max_size=20))
def test_apply_jitter(case: Case, minutes: int, seed: str) -> None:
    ref = case.ref
    t = case.cal.next_open(case.instant)
    result = case.cal.apply_jitter(t, minutes, seed)
    assert_valid_result(case, result)
    assert result == case.cal.apply_jitter(t, minutes, seed)  # deterministic
    assert t <= result <= t + minutes * MINUTE
    assert (result - t) % MINUTE == timedelta(0)
    assert result.astimezone(ref.tz).date() == t.astimezone(ref.tz).date()
    # The unclamped offset is used whenever it stays inside the window that day.
    offset = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % (minutes + 1)
    shifted = t + offset * MINUTE
    day = t.astimezone(ref.tz).date()
    if ref.is_open(shifted) and shifted.astimezone(ref.tz).date() == day:
        assert result == shifted
        return
    # Otherwise: the offset modulo the whole minutes (rounded up) left until the close.
    close = next(c for c in ref.reaches(day, ref.end(day)) if c > t)
    left = -(-(close - t) // MINUTE)
    clamped = t + (offset % left) * MINUTE
    if ref.is_open(clamped) and clamped.astimezone(ref.tz).date() == day:
        assert result == clamped
    else:  # the clock turned back out of the window (start in a repeated hour): no jitter
        assert result == t
