"""Phone numbers: E.164 normalization, country and time zones, on Google's libphonenumber.

Pure functions over :mod:`phonenumbers` (the Python port of libphonenumber);
nothing here does I/O. Every provider call takes E.164 (``+14155552671``), so
numbers are normalized once, before they reach a connector.

Quirks:

* A number without a leading ``+`` needs ``default_region`` (ISO 3166-1
  alpha-2, any case) to be read as a national number: ``"(415) 555-2671"``
  with ``"US"``. A number written with ``+`` or an international prefix
  ignores it.
* "Valid" means libphonenumber's metadata knows the number's ranges (length
  and prefix for its country); it says nothing about whether the line exists
  or takes SMS. Twilio's magic test numbers (``+1500555000x``) are valid.
* Extensions (``ext. 12``) are dropped: E.164 has no place for them.
* Non-geographic numbers (``+800``, satellite) have no region and no time zone.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as _timezone

__all__ = ["e164_or_raw", "phone_channels", "region_of", "timezones_of", "to_e164"]

# What libphonenumber answers when it cannot place a number.
_UNKNOWN_REGIONS = frozenset({"ZZ", "001"})
_UNKNOWN_TIMEZONE = "Etc/Unknown"

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        "no known country code (write it with a leading + or pass default_region)"
    ),
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


def _parse(raw: str, default_region: str | None) -> PhoneNumber:
    """Parse and validate ``raw``; ``ValueError`` naming the input and the reason otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"invalid phone number {raw!r}: empty")
    region = default_region.strip().upper() if default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"invalid phone number {raw!r}: unknown default region {default_region!r}")
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, str(exc))
        raise ValueError(f"invalid phone number {raw!r}: {reason}") from exc
    if not phonenumbers.is_valid_number(number):
        # parse() always sets the country code; the stubs type it for a blank PhoneNumber().
        assert number.country_code is not None
        where = phonenumbers.region_code_for_country_code(number.country_code)
        country = f" for +{number.country_code}" + (
            f" ({where})" if where not in _UNKNOWN_REGIONS else ""
        )
        raise ValueError(
            f"invalid phone number {raw!r}: not a valid number{country} "
            "(wrong length or unassigned range)"
        )
    return number


def to_e164(raw: str, default_region: str | None = None) -> str:
    """Normalize ``raw`` to E.164 (``+14155552671``).

    ``default_region`` (ISO country, e.g. ``"US"``) is how a number written
    without a country code is read. Raises ``ValueError`` naming the input
    and the reason when the number cannot be parsed or is not a valid number.
    """
    return phonenumbers.format_number(_parse(raw, default_region), PhoneNumberFormat.E164)


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
        number = _parse(raw, region)
    except ValueError:
        return frozenset()
    return _CALL_AND_TEXT if phonenumbers.number_type(number) in _TEXTABLE else _CALL_ONLY


def region_of(e164: str) -> str | None:
    """The ISO 3166-1 alpha-2 country of an E.164 number (``"US"``), ``None`` if it has none.

    Non-geographic numbers (``+800 ...``) have none. Raises ``ValueError`` for
    input that is not a valid international number.
    """
    region = phonenumbers.region_code_for_number(_parse(e164, None))
    return None if region is None or region in _UNKNOWN_REGIONS else region


def timezones_of(e164: str) -> tuple[str, ...]:
    """IANA time zones the number may be in: one for most numbers, many for mobiles or +1 500.

    Empty when libphonenumber does not know (non-geographic numbers). Raises
    ``ValueError`` for input that is not a valid international number.
    """
    zones = _timezone.time_zones_for_number(_parse(e164, None))
    return tuple(z for z in zones if z != _UNKNOWN_TIMEZONE)
