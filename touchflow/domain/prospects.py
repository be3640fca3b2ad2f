"""Prospect model and the prospect CSV reader.

A prospect CSV has the columns ``email`` (required), ``first_name``,
``last_name``, ``title``, ``company``, ``domain``, ``phone``, ``country``
(ISO 3166 alpha-2) and ``timezone`` (IANA); any other column is kept in
:attr:`Prospect.fields` and reachable in templates as ``prospect.fields.<column>``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

#: Columns with a meaning of their own; everything else goes to ``fields``.
STANDARD_FIELDS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "title",
    "company",
    "domain",
    "phone",
    "country",
    "timezone",
)

# Deliberately simple: full syntax checks (email-validator) come with the
# importer issue; this only refuses what can never be delivered.
_EMAIL_RE = re.compile(
    r"^[^@\s,;<>]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


@dataclass
class Prospect:
    """A person we may contact. Empty strings are stored as ``None``."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    company: str | None = None
    domain: str | None = None
    phone: str | None = None
    country: str | None = None
    timezone: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def full_name(self) -> str | None:
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None


@dataclass(frozen=True)
class RejectedRow:
    """A CSV row that could not be loaded, with its 1-based line number and why."""

    line: int
    reason: str
    row: dict[str, str]


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def normalize_email(email: str) -> str:
    """Lower-case and trim an address (local parts are case-insensitive in practice)."""
    return email.strip().lower()


def parse_prospect(row: dict[str, str]) -> Prospect:
    """Build a :class:`Prospect` from one CSV row; raise ``ValueError`` naming the problem."""
    data = {k.strip().lower(): v for k, v in row.items() if k is not None}
    email = _clean(data.get("email"))
    if not email:
        raise ValueError("email is required")
    email = normalize_email(email)
    if not _EMAIL_RE.match(email):
        raise ValueError(f"email {email!r} is not a valid address")
    country = _clean(data.get("country"))
    if country is not None:
        country = country.upper()
        if len(country) != 2 or not country.isalpha():
            raise ValueError(f"country {country!r} is not an ISO 3166 alpha-2 code")
    tz = _clean(data.get("timezone"))
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {tz!r} is not an IANA time zone") from None
    phone = _clean(data.get("phone"))
    if phone is not None:
        try:
            parsed = phonenumbers.parse(phone, country)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"phone {phone!r} cannot be parsed: {exc}") from None
        if not phonenumbers.is_possible_number(parsed):
            raise ValueError(f"phone {phone!r} is not a possible number")
        phone = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    domain = _clean(data.get("domain"))
    if domain is None:
        domain = email.rsplit("@", 1)[1]
    extra = {
        k: v.strip()
        for k, v in data.items()
        if k not in STANDARD_FIELDS and isinstance(v, str) and v.strip()
    }
    return Prospect(
        email=email,
        first_name=_clean(data.get("first_name")),
        last_name=_clean(data.get("last_name")),
        title=_clean(data.get("title")),
        company=_clean(data.get("company")),
        domain=domain.lower(),
        phone=phone,
        country=country,
        timezone=tz,
        fields=extra,
    )


def read_prospects_csv(path: Path) -> Iterator[tuple[int, dict[str, str], Prospect | RejectedRow]]:
    """Stream a prospect CSV: yield ``(line, raw_row, Prospect | RejectedRow)`` per row.

    A row that fails to parse is yielded as a :class:`RejectedRow`, so the
    caller can write it aside and keep loading the good rows.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [f.strip().lower() for f in reader.fieldnames or ()]
        if "email" not in header:
            raise ValueError(f"{path}: the header must have an 'email' column")
        for row in reader:
            line = reader.line_num
            if None in row:  # more cells than header columns
                yield line, row, RejectedRow(line, "more cells than header columns", row)
                continue
            try:
                yield line, row, parse_prospect(row)
            except ValueError as exc:
                yield line, row, RejectedRow(line, str(exc), row)
