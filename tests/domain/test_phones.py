"""touchflow.domain.phones: E.164 normalization, region and time zones."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from touchflow.domain.phones import (
    PhoneNumberError,
    phone_channels,
    region_of,
    timezones_of,
    to_e164,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 415 555 2671", None, "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "us", "+14155552671"),  # region in any case
        ("  +1 (415) 555-2671  ", None, "+14155552671"),
        ("1-415-555-2671", "US", "+14155552671"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 (0)20 7946 0958", None, "+442079460958"),
        ("00 44 20 7946 0958", "DE", "+442079460958"),  # international prefix wins
        ("+49 30 901820", "US", "+4930901820"),  # a + ignores the default region
        ("+1 415 555 2671 ext. 12", None, "+14155552671"),  # extension dropped
        ("+15005550006", None, "+15005550006"),  # Twilio's magic test numbers are valid
        # 00 is the international prefix whatever the country (libphonenumber alone
        # reads it only where the country's own prefix is 00).
        ("0098 912 123 4567", None, "+989121234567"),
        ("00 98 912 123 4567", "US", "+989121234567"),
        ("(00) 971 50 123 4567", "GB", "+971501234567"),
        # Digits in Persian and Arabic-Indic script.
        ("۰۹۱۲ ۱۲۳ ۴۵۶۷", "IR", "+989121234567"),
        ("٠٥٠ ١٢٣ ٤٥٦٧", "AE", "+971501234567"),
        ("۰۰۹۸ ۹۱۲ ۱۲۳ ۴۵۶۷", None, "+989121234567"),
    ],
)
def test_to_e164_normalizes(raw: str, region: str | None, expected: str) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", None, "empty"),
        ("   ", "US", "empty"),
        ("hello", "US", "not a phone number"),
        ("(415) 555-2671", None, "no country code (write it with + or 00"),
        ("+1 415 555", None, "not a valid number for +1"),
        ("+1 415 555 26711", None, "not a valid number for +1"),
        ("+999 1234 5678", None, "no country has the code it starts with"),
        ("415 555 2671", "XX", "unknown country 'XX'"),
        ("12", "US", "not a valid number"),
    ],
)
def test_to_e164_rejects_with_the_input_and_reason(raw: str, region: str | None, reason: str):
    with pytest.raises(ValueError) as info:
        to_e164(raw, region)
    assert repr(raw) in str(info.value)
    assert reason in str(info.value)


def test_errors_carry_a_reason_code_and_speak_no_library_parameter() -> None:
    cases = {
        ("0912 123 4567", None): "no_country_code",
        ("+999 1234 5678", None): "unknown_country_code",
        ("0912 123 4567", "XX"): "unknown_country",
        ("+1 415 555", None): "invalid",
        ("hello", "US"): "not_a_number",
        ("", None): "empty",
    }
    for (raw, country), reason in cases.items():
        with pytest.raises(PhoneNumberError) as info:
            to_e164(raw, country)
        assert info.value.reason == reason
        assert "default_region" not in str(info.value) and "region" not in str(info.value)


def test_region_of() -> None:
    assert region_of("+14155552671") == "US"
    assert region_of("+442079460958") == "GB"
    assert region_of("+16135550123") == "CA"  # +1 is shared: the area code decides
    assert region_of("+80012345678") is None  # international freephone: no country
    with pytest.raises(ValueError, match="no country code"):
        region_of("4155552671")


def test_timezones_of() -> None:
    assert timezones_of("+14155552671") == ("America/Los_Angeles",)
    assert timezones_of("+12015550123") == ("America/New_York",)
    assert timezones_of("+442079460958") == ("Europe/London",)
    assert timezones_of("+80012345678") == ()  # non-geographic: unknown, not "Etc/Unknown"
    many = timezones_of("+15005550006")  # +1 500 is not tied to a place
    assert len(many) > 1 and "America/New_York" in many
    with pytest.raises(ValueError):
        timezones_of("not a number")


_REGIONS = sorted(
    r
    for r in ("US", "CA", "GB", "DE", "FR", "IN", "BR", "AU", "JP", "MX", "ES", "NL", "SG", "ZA")
    if r in phonenumbers.SUPPORTED_REGIONS
)
_TYPES = (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


@st.composite
def _valid_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A valid number: a region's example number with its last digits varied."""
    region = draw(st.sampled_from(_REGIONS))
    kind = draw(st.sampled_from(_TYPES))
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(
        region
    )
    assert example is not None
    national = str(example.national_number)
    tail = draw(st.integers(min_value=0, max_value=99))
    candidate = phonenumbers.parse(f"+{example.country_code}{national[:-2]}{tail:02d}")
    # Varying the tail can leave the assigned range in a few countries: keep the example then.
    return candidate if phonenumbers.is_valid_number(candidate) else example


@settings(max_examples=200, deadline=None)
@given(
    number=_valid_numbers(),
    style=st.sampled_from(
        [PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.RFC3966]
    ),
)
def test_formatted_valid_number_round_trips(number: phonenumbers.PhoneNumber, style: int) -> None:
    expected = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    written = phonenumbers.format_number(number, style).removeprefix("tel:")
    assert to_e164(written) == expected
    assert to_e164(expected) == expected  # idempotent
    assert region_of(expected) == phonenumbers.region_code_for_number(number)


@settings(max_examples=100, deadline=None)
@given(number=_valid_numbers())
def test_national_format_round_trips_with_its_region(number: phonenumbers.PhoneNumber) -> None:
    region = phonenumbers.region_code_for_number(number)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    assert to_e164(national, region) == phonenumbers.format_number(number, PhoneNumberFormat.E164)


@settings(max_examples=100, deadline=None)
@given(number=_valid_numbers(), home=st.sampled_from(_REGIONS))
def test_double_zero_prefix_reads_from_any_country(
    number: phonenumbers.PhoneNumber, home: str
) -> None:
    written = "00" + phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)[1:]
    expected = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    assert to_e164(written, home) == expected
    assert to_e164(written) == expected


@given(st.text(max_size=30))
def test_to_e164_only_ever_raises_value_error(raw: str) -> None:
    try:
        result = to_e164(raw, "US")
    except ValueError:
        return
    assert result.startswith("+") and result[1:].isdigit()


@pytest.mark.parametrize(
    ("raw", "region", "channels"),
    [
        ("+4915112345678", None, {"call", "sms"}),  # a German mobile
        ("+493012345678", None, {"call"}),  # a Berlin landline takes no texts
        ("030 1234567", "DE", {"call"}),  # national, read with the country
        ("(212) 555-0123", "US", {"call", "sms"}),  # US: fixed line or mobile, cannot tell
        ("+15005550006", None, {"call", "sms"}),  # Twilio's test numbers
        ("030 1234567", None, set()),  # national without a country: unreadable
        ("030 1234567", "Germany", set()),  # not a region: ignored, still unreadable
        ("+493012345678", "Germany", {"call"}),  # ...but an international number reads
        ("12", "US", set()),
        ("", "US", set()),
        (None, None, set()),
    ],
)
def test_phone_channels(raw: str | None, region: str | None, channels: set[str]) -> None:
    assert phone_channels(raw, region) == channels
