"""Phone numbers: E.164 normalization, country and time zones, on Google's libphonenumber.

Pure functions over :mod:`phonenumbers` (the Python port of libphonenumber);
nothing here does I/O. Every provider call takes E.164 (``+14155552671``), so
numbers are normalized once, before they reach a connector.

Quirks:

* A number without a leading ``+`` is read as a national number of the
  ``country`` given (ISO 3166-1 alpha-2, any case): ``"(415) 555-2671"`` with
  ``"US"``. A number written with ``+`` or an international prefix ignores it.
* ``00`` before a number is the international prefix of most of the world
  (``0098 912 ...`` is ``+98 912 ...``), whatever the country given: no
  national number starts with ``00``. libphonenumber alone reads it only
  when the country's own prefix is ``00``, so from the US ``0098...`` would
  be refused.
* Digits in any script count: Persian ``۰۹۱۲``, Arabic-Indic ``٠٥٠``, full-width.
* "Valid" means libphonenumber's metadata knows the number's ranges (length
  and prefix for its country); it says nothing about whether the line exists
  or takes SMS. Twilio's magic test numbers (``+1500555000x``) are valid.
* Extensions (``ext. 12``) are dropped: E.164 has no place for them.
* Non-geographic numbers (``+800``, satellite) have no region and no time zone.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as _timezone

__all__ = [
    "NO_COUNTRY_CODE",
    "PhoneNumberError",
    "e164_or_raw",
    "parse_phone",
    "phone_channels",
    "region_of",
    "timezones_of",
    "to_e164",
]

# What libphonenumber answers when it cannot place a number.
_UNKNOWN_REGIONS = frozenset({"ZZ", "001"})
_UNKNOWN_TIMEZONE = "Etc/Unknown"

# Reason codes (for callers that explain in their own words) and the message's words.
NO_COUNTRY_CODE = "no_country_code"
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        NO_COUNTRY_CODE,
        "no country code (write it with + or 00 and the country code, "
        "or give the country it belongs to)",
    ),
    NumberParseException.NOT_A_NUMBER: ("not_a_number", "not a phone number"),
    NumberParseException.TOO_SHORT_AFTER_IDD: (
        "too_short",
        "too short after the international prefix",
    ),
    NumberParseException.TOO_SHORT_NSN: ("too_short", "too short"),
    NumberParseException.TOO_LONG: ("too_long", "too long"),
}
# A leading 00 (in any script's digits), then the country code.
_DOUBLE_ZERO = re.compile(r"\s*\(?\s*(\d)[\s.-]?(\d)\s*\)?")


class PhoneNumberError(ValueError):
    """A phone number that cannot be read. ``reason`` is a code: ``empty``,
    ``unknown_country`` (the country given), ``no_country_code``,
    ``unknown_country_code`` (``+999``), ``not_a_number``, ``too_short``,
    ``too_long`` or ``invalid`` (parsed, but not a number of its country's plan)."""

    def __init__(self, raw: str, reason: str, message: str) -> None:
        super().__init__(f"invalid phone number {raw!r}: {message}")
        self.raw = raw
        self.reason = reason


def _international(raw: str) -> str:
    """``raw`` with a leading ``00`` written as ``+`` (see the module docstring)."""
    match = _DOUBLE_ZERO.match(raw)
    if match is not None and int(match[1]) == 0 and int(match[2]) == 0:
        return "+" + raw[match.end() :]
    return raw


def parse_phone(raw: str, country: str | None = None) -> tuple[PhoneNumber, str | None]:
    """``raw`` parsed and validated: the number and its ISO country (None if non-geographic).

    ``country`` (ISO alpha-2, any case) is how a number without a country code
    is read. Raises :class:`PhoneNumberError` naming the input and the reason.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise PhoneNumberError(str(raw), "empty", "empty")
    region = country.strip().upper() if country else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneNumberError(raw, "unknown_country", f"unknown country {country!r}")
    text = _international(raw)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        reason, words = _PARSE_REASONS.get(exc.error_type, ("not_a_number", str(exc)))
        if reason == NO_COUNTRY_CODE and text.lstrip().startswith(("+", "\uff0b")):
            reason, words = "unknown_country_code", "no country has the code it starts with"
        raise PhoneNumberError(raw, reason, words) from exc
    # is_valid_number() is exactly this, but would look the region up twice.
    number_region = phonenumbers.region_code_for_number(number)
    if number_region is None or not phonenumbers.is_valid_number_for_region(number, number_region):
        # parse() always sets the country code; the stubs type it for a blank PhoneNumber().
        assert number.country_code is not None
        where = phonenumbers.region_code_for_country_code(number.country_code)
        plan = f" for +{number.country_code}" + (
            f" ({where})" if where not in _UNKNOWN_REGIONS else ""
        )
        raise PhoneNumberError(
            raw, "invalid", f"not a valid number{plan} (wrong length or unassigned range)"
        )
    return number, None if number_region in _UNKNOWN_REGIONS else number_region


def to_e164(raw: str, default_region: str | None = None) -> str:
    """Normalize ``raw`` to E.164 (``+14155552671``).

    ``default_region`` (ISO country, e.g. ``"US"``) is how a number written
    without a country code is read. Raises :class:`PhoneNumberError` (a
    ``ValueError``) naming the input and the reason when the number cannot be
    parsed or is not a valid number.
    """
    number, _ = parse_phone(raw, default_region)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def e164_or_raw(raw: str, default_region: str | None = None) -> str:
    """E.164 when the number parses (``+14155552671``), else the trimmed input (short codes).

    For keys (suppressions, lookups) that must also hold what cannot be parsed.
    """
    try:
        return to_e164(raw, default_region)
    except ValueError:
        return raw.strip()


#: Number types a text can reach. libphonenumber cannot tell a US or Canadian
#: mobile from a landline (FIXED_LINE_OR_MOBILE): those count as mobile, and
#: the carrier has the last word. VoIP and personal numbers (+1 500, Twilio's
#: test numbers) commonly take texts.
_TEXTABLE = frozenset(
    {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)
_CALL_ONLY = frozenset({"call"})
_CALL_AND_TEXT = frozenset({"call", "sms"})


@lru_cache(maxsize=65536)
def phone_channels(raw: str | None, default_region: str | None = None) -> frozenset[str]:
    """The channels a number can take: ``{"call", "sms"}``, ``{"call"}`` (a landline) or none.

    None for a missing or unreadable number (``default_region`` reads a
    national one; an unknown region is ignored rather than fatal). The
    cadence engine skips a step whose channel the prospect's number cannot
    take (``no_phone``). Cached: a tick asks again for the same prospects.
    """
    if not raw or not raw.strip():
        return frozenset()
    region = default_region.strip().upper() if default_region else None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = None
    try:
        number, _ = parse_phone(raw, region)
    except ValueError:
        return frozenset()
    return _CALL_AND_TEXT if phonenumbers.number_type(number) in _TEXTABLE else _CALL_ONLY


def region_of(e164: str) -> str | None:
    """The ISO 3166-1 alpha-2 country of an E.164 number (``"US"``), ``None`` if it has none.

    Non-geographic numbers (``+800 ...``) have none. Raises ``ValueError`` for
    input that is not a valid international number.
    """
    return parse_phone(e164)[1]


def timezones_of(e164: str) -> tuple[str, ...]:
    """IANA time zones the number may be in: one for most numbers, many for mobiles or +1 500.

    Empty when libphonenumber does not know (non-geographic numbers). Raises
    ``ValueError`` for input that is not a valid international number.
    """
    zones = _timezone.time_zones_for_number(parse_phone(e164)[0])
    return tuple(z for z in zones if z != _UNKNOWN_TIMEZONE)
