"""Concrete examples of the business-calendar contract (touchflow.domain.calendar)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from touchflow.domain.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    SendWindow,
    country_timezone,
    resolve_timezone,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
MON_FRI = frozenset(range(5))
EVERY_DAY = frozenset(range(7))
OFFICE = SendWindow(MON_FRI, time(8, 0), time(17, 30))
ALL_DAY = SendWindow(EVERY_DAY, time(0, 0), time(23, 59))


def ny(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=NY, fold=fold)  # type: ignore[misc]


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def office() -> BusinessCalendar:
    return BusinessCalendar(NY, OFFICE)


@pytest.fixture
def office_us() -> BusinessCalendar:
    return BusinessCalendar(NY, OFFICE, ["US"])


def offset_for(seed: str, minutes: int) -> int:
    """The documented jitter offset, computed independently of the implementation."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % (minutes + 1)


# -- construction -------------------------------------------------------------------------


def test_weekdays_are_monday_first() -> None:
    assert WEEKDAYS[date(2026, 3, 9).weekday()] == "mon"
    assert len(WEEKDAYS) == 7


def test_attributes(office_us: BusinessCalendar) -> None:
    assert office_us.tz is NY
    assert office_us.window == OFFICE
    assert office_us.holiday_countries == ("US",)


def test_country_codes_are_normalised_and_deduplicated() -> None:
    cal = BusinessCalendar(NY, OFFICE, [" us", "DE", "US"])
    assert cal.holiday_countries == ("US", "DE")


def test_unknown_holiday_country_is_rejected_naming_it() -> None:
    with pytest.raises(ValueError, match="XX"):
        BusinessCalendar(NY, OFFICE, ["US", "XX"])


@pytest.mark.parametrize(
    "window",
    [
        SendWindow(frozenset(), time(8), time(17)),
        SendWindow(frozenset({7}), time(8), time(17)),
        SendWindow(MON_FRI, time(17), time(8)),
        SendWindow(MON_FRI, time(8), time(8)),
    ],
)
def test_unusable_window_is_rejected(window: SendWindow) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(NY, window)


# -- days and is_open -----------------------------------------------------------------------


def test_holidays_and_business_days(office_us: BusinessCalendar, office: BusinessCalendar) -> None:
    thanksgiving = date(2026, 11, 26)
    assert office_us.is_holiday(thanksgiving)
    assert not office_us.is_business_day(thanksgiving)
    assert not office.is_holiday(thanksgiving)
    assert office.is_business_day(thanksgiving)
    assert not office.is_business_day(date(2026, 11, 28))  # Saturday


def test_holiday_of_any_country_counts() -> None:
    cal = BusinessCalendar(BERLIN, OFFICE, ["DE", "US"])
    assert cal.is_holiday(date(2025, 10, 3))  # Tag der Deutschen Einheit (DE)
    assert cal.is_holiday(date(2026, 11, 26))  # Thanksgiving (US)
    assert not cal.is_holiday(date(2026, 11, 25))


def test_is_open_reads_the_local_wall_clock(office_us: BusinessCalendar) -> None:
    assert office_us.is_open(ny(2026, 3, 6, 8, 0))
    assert office_us.is_open(ny(2026, 3, 6, 17, 29, 59))
    assert not office_us.is_open(ny(2026, 3, 6, 17, 30))  # end is exclusive
    assert not office_us.is_open(ny(2026, 3, 6, 7, 59))
    assert not office_us.is_open(ny(2026, 3, 7, 10, 0))  # Saturday
    assert not office_us.is_open(ny(2026, 11, 26, 10, 0))  # Thanksgiving
    # 13:00 UTC on a Friday is 08:00 in New York (EST), 12:00 UTC is not.
    assert office_us.is_open(utc(2026, 3, 6, 13, 0))
    assert not office_us.is_open(utc(2026, 3, 6, 12, 59))


def test_naive_datetimes_are_rejected(office: BusinessCalendar) -> None:
    naive = datetime(2026, 3, 6, 10, 0)
    for call in (
        lambda: office.is_open(naive),
        lambda: office.next_open(naive),
        lambda: office.add_business_days(naive, 1),
        lambda: office.add_days(naive, 1),
        lambda: office.add_elapsed(naive, timedelta(hours=1)),
        lambda: office.apply_jitter(naive, 5, "s"),
    ):
        with pytest.raises(ValueError, match="naive"):
            call()


def test_negative_delays_are_rejected(office: BusinessCalendar) -> None:
    t = ny(2026, 3, 6, 10)
    with pytest.raises(ValueError):
        office.add_business_days(t, -1)
    with pytest.raises(ValueError):
        office.add_days(t, -1)
    with pytest.raises(ValueError):
        office.add_elapsed(t, timedelta(minutes=-1))
    with pytest.raises(ValueError):
        office.apply_jitter(t, -1, "s")


# -- next_open ------------------------------------------------------------------------------


def test_results_are_utc(office: BusinessCalendar) -> None:
    assert office.next_open(ny(2026, 3, 6, 10)).tzinfo is UTC
    assert office.next_open(ny(2026, 3, 7, 10)).tzinfo is UTC
    assert office.add_business_days(ny(2026, 3, 6, 10), 1).tzinfo is UTC
    assert office.add_days(ny(2026, 3, 6, 10), 1).tzinfo is UTC
    assert office.add_elapsed(ny(2026, 3, 6, 10), timedelta(hours=1)).tzinfo is UTC
    assert office.apply_jitter(ny(2026, 3, 6, 10), 10, "s").tzinfo is UTC


def test_next_open_of_open_instant_is_itself(office: BusinessCalendar) -> None:
    t = ny(2026, 3, 6, 10, 17, 23, 5)
    assert office.next_open(t) == t


def test_enrollment_on_saturday_waits_for_monday_morning(office: BusinessCalendar) -> None:
    assert office.next_open(ny(2026, 3, 7, 11, 0)) == ny(2026, 3, 9, 8, 0)


def test_next_open_before_start_is_same_day(office: BusinessCalendar) -> None:
    assert office.next_open(ny(2026, 3, 4, 6, 0)) == ny(2026, 3, 4, 8, 0)


def test_next_open_after_end_is_next_business_day(office: BusinessCalendar) -> None:
    assert office.next_open(ny(2026, 3, 4, 17, 30)) == ny(2026, 3, 5, 8, 0)
    assert office.next_open(ny(2026, 3, 6, 17, 30)) == ny(2026, 3, 9, 8, 0)  # Fri -> Mon


def test_next_open_skips_holidays(office_us: BusinessCalendar) -> None:
    assert office_us.next_open(ny(2026, 11, 26, 9, 0)) == ny(2026, 11, 27, 8, 0)


def test_window_starting_inside_spring_forward_gap_opens_at_the_jump() -> None:
    # New York skips 02:00-03:00 on 2026-03-08; at 02:00 EST the clock reads 03:00 EDT,
    # which is already past 02:30, so the window is open from that moment.
    cal = BusinessCalendar(NY, SendWindow(EVERY_DAY, time(2, 30), time(5, 0)))
    assert cal.next_open(ny(2026, 3, 8, 1, 0)) == utc(2026, 3, 8, 7, 0)
    assert cal.next_open(ny(2026, 3, 8, 1, 0)).astimezone(NY).time() == time(3, 0)


def test_window_wholly_inside_the_gap_does_not_open_that_day() -> None:
    cal = BusinessCalendar(NY, SendWindow(EVERY_DAY, time(2, 10), time(2, 50)))
    assert cal.next_open(ny(2026, 3, 8, 1, 0)) == ny(2026, 3, 9, 2, 10)


def test_next_open_in_repeated_fall_back_hour() -> None:
    # New York repeats 01:00-02:00 on 2026-11-01 (EDT 05:00-06:00 UTC, then EST 06:00-07:00).
    cal = BusinessCalendar(NY, SendWindow(EVERY_DAY, time(1, 20), time(5, 0)))
    # Before the first 01:20: its first occurrence.
    assert cal.next_open(ny(2026, 11, 1, 0, 30)) == utc(2026, 11, 1, 5, 20)
    # At 01:10 the second time round the first 01:20 has passed; the next one is due.
    # (Compared in UTC: PEP 495 makes a repeated-hour time unequal to every other zone's.)
    second_0110 = ny(2026, 11, 1, 1, 10, fold=1)
    assert second_0110.astimezone(UTC) == utc(2026, 11, 1, 6, 10)
    assert cal.next_open(second_0110) == utc(2026, 11, 1, 6, 20)


# -- add_business_days ----------------------------------------------------------------------


def test_friday_plus_two_business_days_is_tuesday_same_time(office: BusinessCalendar) -> None:
    assert office.add_business_days(ny(2026, 3, 6, 16, 0), 2) == ny(2026, 3, 10, 16, 0)


def test_outside_window_wall_time_rolls_to_next_opening(office: BusinessCalendar) -> None:
    # Friday 18:00 + 1 business day = Monday 18:00, after the window: Tuesday 08:00.
    assert office.add_business_days(ny(2026, 3, 6, 18, 0), 1) == ny(2026, 3, 10, 8, 0)
    # Before the window: same landing day at the start.
    assert office.add_business_days(ny(2026, 3, 6, 6, 0), 1) == ny(2026, 3, 9, 8, 0)


def test_zero_business_days_is_next_open(office: BusinessCalendar) -> None:
    t = ny(2026, 3, 7, 11, 0)
    assert office.add_business_days(t, 0) == office.next_open(t) == ny(2026, 3, 9, 8, 0)


def test_counting_starts_from_a_weekend_date(office: BusinessCalendar) -> None:
    # Saturday 10:00 + 1 business day = Monday 10:00 (Sunday is not a business day).
    assert office.add_business_days(ny(2026, 3, 7, 10, 0), 1) == ny(2026, 3, 9, 10, 0)


def test_thanksgiving_is_skipped(office_us: BusinessCalendar, office: BusinessCalendar) -> None:
    wednesday = ny(2026, 11, 25, 10, 0)
    assert office_us.add_business_days(wednesday, 1) == ny(2026, 11, 27, 10, 0)
    assert office.add_business_days(wednesday, 1) == ny(2026, 11, 26, 10, 0)


def test_independence_day_observed_on_friday(office_us: BusinessCalendar) -> None:
    # July 4th 2026 is a Saturday; the federal holiday is observed on Friday July 3rd.
    assert office_us.is_holiday(date(2026, 7, 3))
    assert office_us.add_business_days(ny(2026, 7, 2, 10, 0), 1) == ny(2026, 7, 6, 10, 0)
    # 2025: a Friday itself.
    assert office_us.add_business_days(ny(2025, 7, 3, 10, 0), 1) == ny(2025, 7, 7, 10, 0)


def test_wall_clock_survives_spring_dst_switch(office: BusinessCalendar) -> None:
    friday = ny(2026, 3, 6, 9, 15)  # EST, UTC-5
    monday = office.add_business_days(friday, 1)  # EDT, UTC-4
    assert monday.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 9, 9, 15)
    assert friday.astimezone(UTC).time() == time(14, 15)
    assert monday == utc(2026, 3, 9, 13, 15)
    assert monday - friday == timedelta(days=3) - timedelta(hours=1)


def test_wall_clock_survives_berlin_autumn_dst_switch() -> None:
    cal = BusinessCalendar(BERLIN, OFFICE, ["DE"])
    friday = berlin(2026, 10, 23, 9, 15)  # CEST, UTC+2
    monday = cal.add_business_days(friday, 1)  # CET, UTC+1
    assert monday == utc(2026, 10, 26, 8, 15)
    assert monday.astimezone(BERLIN).time() == time(9, 15)


def test_nonexistent_wall_time_moves_forward_by_the_gap() -> None:
    cal = BusinessCalendar(NY, ALL_DAY)
    saturday = ny(2026, 3, 7, 2, 30)
    expected = utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    assert cal.add_days(saturday, 1) == expected
    assert cal.add_business_days(saturday, 1) == expected
    assert expected.astimezone(NY).time() == time(3, 30)


def test_half_hour_gap_of_lord_howe() -> None:
    # Lord Howe Island moves from +10:30 to +11:00 at 02:00 local on 2026-10-04.
    lhi = ZoneInfo("Australia/Lord_Howe")
    cal = BusinessCalendar(lhi, ALL_DAY)
    result = cal.add_days(datetime(2026, 10, 3, 2, 15, tzinfo=lhi), 1)
    assert result.astimezone(lhi).replace(tzinfo=None) == datetime(2026, 10, 4, 2, 45)


def test_ambiguous_wall_time_takes_first_occurrence() -> None:
    # Berlin repeats 02:00-03:00 on 2026-10-25; the first 02:30 is CEST (00:30 UTC).
    cal = BusinessCalendar(BERLIN, ALL_DAY)
    assert cal.add_days(berlin(2026, 10, 24, 2, 30), 1) == utc(2026, 10, 25, 0, 30)
    assert cal.add_business_days(berlin(2026, 10, 24, 2, 30), 1) == utc(2026, 10, 25, 0, 30)


# -- add_days / add_elapsed -----------------------------------------------------------------


def test_add_days_counts_calendar_days(office: BusinessCalendar) -> None:
    # Thursday 10:00 + 2 days = Saturday 10:00 -> Monday 08:00.
    assert office.add_days(ny(2026, 3, 5, 10, 0), 2) == ny(2026, 3, 9, 8, 0)
    # Monday 10:00 + 3 days = Thursday 10:00, open.
    assert office.add_days(ny(2026, 3, 2, 10, 0), 3) == ny(2026, 3, 5, 10, 0)
    # Wall clock kept across the DST switch.
    assert office.add_days(ny(2026, 3, 6, 9, 15), 3) == ny(2026, 3, 9, 9, 15)


def test_add_elapsed_is_absolute_time(office: BusinessCalendar) -> None:
    cal = BusinessCalendar(NY, ALL_DAY)
    saturday_noon = ny(2026, 3, 7, 12, 0)
    # 24 hours across spring-forward is 13:00 on the wall clock; one day keeps 12:00.
    assert cal.add_elapsed(saturday_noon, timedelta(hours=24)) == ny(2026, 3, 8, 13, 0)
    assert cal.add_days(saturday_noon, 1) == ny(2026, 3, 8, 12, 0)
    # Within the office window: Friday 16:00 + 1h is open; + 2h is after close -> Monday.
    assert office.add_elapsed(ny(2026, 3, 6, 16, 0), timedelta(hours=1)) == ny(2026, 3, 6, 17, 0)
    assert office.add_elapsed(ny(2026, 3, 6, 16, 0), timedelta(hours=2)) == ny(2026, 3, 9, 8, 0)


def test_add_elapsed_works_from_any_offset(office: BusinessCalendar) -> None:
    paris_summer = timezone(timedelta(hours=2))
    t = datetime(2026, 6, 3, 16, 0, tzinfo=paris_summer)  # 10:00 in New York
    assert office.add_elapsed(t, timedelta(minutes=90)) == ny(2026, 6, 3, 11, 30)


# -- apply_jitter ---------------------------------------------------------------------------


def test_jitter_is_deterministic_sha256_offset(office: BusinessCalendar) -> None:
    t = ny(2026, 3, 4, 10, 0)
    first = office.apply_jitter(t, 30, "enrollment-1:step-2")
    assert first == office.apply_jitter(t, 30, "enrollment-1:step-2")
    assert first == t + timedelta(minutes=offset_for("enrollment-1:step-2", 30))


def test_jitter_spreads_over_the_range(office: BusinessCalendar) -> None:
    t = ny(2026, 3, 4, 10, 0)
    minute = timedelta(minutes=1)
    offsets = {(office.apply_jitter(t, 30, f"e{i}") - t) // minute for i in range(200)}
    assert offsets <= set(range(31))
    assert len(offsets) > 20


def test_zero_jitter_returns_instant(office: BusinessCalendar) -> None:
    t = ny(2026, 3, 4, 10, 0)
    assert office.apply_jitter(t, 0, "anything") == t


def test_jitter_needs_an_open_instant(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="window"):
        office.apply_jitter(ny(2026, 3, 7, 10, 0), 10, "s")


def test_jitter_near_window_end_is_clamped(office: BusinessCalendar) -> None:
    seed = next(s for s in (f"seed{i}" for i in range(1000)) if offset_for(s, 30) >= 5)
    offset = offset_for(seed, 30)
    t = ny(2026, 3, 4, 17, 27)  # 3 minutes left
    result = office.apply_jitter(t, 30, seed)
    assert result == t + timedelta(minutes=offset % 3)
    assert office.is_open(result)
    # 30 seconds left: the only whole minute is offset 0.
    late = ny(2026, 3, 4, 17, 29, 30)
    assert office.apply_jitter(late, 30, seed) == late


def test_jitter_never_crosses_midnight() -> None:
    cal = BusinessCalendar(NY, ALL_DAY)
    seed = next(s for s in (f"seed{i}" for i in range(1000)) if offset_for(s, 60) >= 10)
    t = ny(2026, 3, 4, 23, 55)
    result = cal.apply_jitter(t, 60, seed)
    assert result.astimezone(NY).date() == date(2026, 3, 4)
    assert t <= result < ny(2026, 3, 4, 23, 59)


def test_jitter_in_repeated_fall_back_hour() -> None:
    # New York repeats 01:00-02:00 on 2026-11-01. At 01:30 the second time round, the window
    # closes at the *second* 01:40, ten minutes later.
    cal = BusinessCalendar(NY, SendWindow(EVERY_DAY, time(0, 30), time(1, 40)))
    seed = next(s for s in (f"seed{i}" for i in range(1000)) if offset_for(s, 30) >= 10)
    t = ny(2026, 11, 1, 1, 30, fold=1).astimezone(UTC)
    assert t == utc(2026, 11, 1, 6, 30)
    assert cal.apply_jitter(t, 30, seed) == t + timedelta(minutes=offset_for(seed, 30) % 10)


def test_jitter_is_dropped_when_the_clock_turns_back_out_of_the_window() -> None:
    # Window from 01:20; at the first 01:50 any shift past 02:00 EDT reads 01:xx EST again,
    # and the part before 01:20 is closed: rather than leave the window, no jitter.
    cal = BusinessCalendar(NY, SendWindow(EVERY_DAY, time(1, 20), time(3, 0)))
    seed = next(s for s in (f"seed{i}" for i in range(1000)) if 10 < offset_for(s, 30) < 30)
    t = utc(2026, 11, 1, 5, 50)  # 01:50 EDT
    assert cal.is_open(t)
    assert not cal.is_open(t + timedelta(minutes=offset_for(seed, 30)))
    assert cal.apply_jitter(t, 30, seed) == t


# -- time zones -----------------------------------------------------------------------------


def test_explicit_zone_wins() -> None:
    zone = resolve_timezone("Asia/Tokyo", "+1 415 555 0100", "US", "UTC")
    assert zone == ZoneInfo("Asia/Tokyo")


def test_invalid_explicit_zone_falls_through_to_phone() -> None:
    assert resolve_timezone("Mars/Olympus", "+1 415 555 0100", None, "UTC").key == (
        "America/Los_Angeles"
    )
    assert resolve_timezone("", "+49 30 1234567", None, "UTC").key == "Europe/Berlin"


@pytest.mark.parametrize(
    ("phone", "country", "zone"),
    [
        ("+1 415 555 0100", None, "America/Los_Angeles"),
        ("+49 30 1234567", None, "Europe/Berlin"),
        ("(415) 555-0100", "US", "America/Los_Angeles"),  # national format, country as hint
        ("030 1234567", "de", "Europe/Berlin"),
        ("+91 98765 43210", None, "Asia/Kolkata"),  # phonenumbers says Asia/Calcutta
        ("+1 800 555 0100", None, "America/New_York"),  # toll-free: country's main zone
        ("+61 412 345 678", None, "Australia/Sydney"),  # mobile: country's main zone
    ],
)
def test_zone_from_phone(phone: str, country: str | None, zone: str) -> None:
    assert resolve_timezone(None, phone, country, "UTC").key == zone


def test_unknown_phone_falls_back_to_country() -> None:
    # +44 7700 900xxx is reserved for drama: no zone for it.
    assert resolve_timezone(None, "+44 7700 900123", "DE", "UTC").key == "Europe/Berlin"
    assert resolve_timezone(None, "not a number", "JP", "UTC").key == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("DE", "Europe/Berlin"),
        ("JP", "Asia/Tokyo"),
        ("IN", "Asia/Kolkata"),
        ("us", "America/New_York"),
    ],
)
def test_zone_from_country_only(country: str, zone: str) -> None:
    assert resolve_timezone(None, None, country, "UTC").key == zone


def test_fallback_when_nothing_is_known() -> None:
    assert resolve_timezone(None, None, None, "Europe/London").key == "Europe/London"
    assert resolve_timezone(None, None, "ZZ", "UTC").key == "UTC"


def test_invalid_fallback_is_an_error() -> None:
    with pytest.raises(ValueError, match="Nowhere/Land"):
        resolve_timezone(None, None, None, "Nowhere/Land")


def test_resolved_zones_are_shared() -> None:
    a = resolve_timezone(None, None, "DE", "UTC")
    assert resolve_timezone("Europe/Berlin", None, None, "UTC") is a


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("US", "America/New_York"),
        ("DE", "Europe/Berlin"),
        ("GB", "Europe/London"),
        ("AU", "Australia/Sydney"),  # zone.tab lists Lord Howe first
        ("CA", "America/Toronto"),  # ... St. John's
        ("BR", "America/Sao_Paulo"),  # ... Noronha
        ("RU", "Europe/Moscow"),  # ... Kaliningrad
        ("MX", "America/Mexico_City"),
        ("CN", "Asia/Shanghai"),
        ("ID", "Asia/Jakarta"),
        ("UA", "Europe/Kyiv"),  # ... Simferopol
        ("NZ", "Pacific/Auckland"),
        ("fr", "Europe/Paris"),
    ],
)
def test_country_timezone(country: str, zone: str) -> None:
    assert country_timezone(country) == zone


def test_country_timezone_unknown() -> None:
    assert country_timezone("ZZ") is None
    assert country_timezone("") is None
