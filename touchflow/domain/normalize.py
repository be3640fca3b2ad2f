"""Prospect normalization: one raw import row in, a clean record (or the reason it is refused) out.

Pure: no I/O but the package data read once (the title rules and the
free-mail and role-address lists in ``touchflow/data/``), and no clock.
:func:`normalize` takes one row as ``{touchflow field: text}`` (the importer
has already applied the column mapping) and returns :class:`Normalized` or
:class:`Rejection`:

* **email** (the key): checked and normalized by ``email_validator``
  (``check_deliverability=False``: no DNS), then lower-cased. Flags:
  ``email_free`` (a consumer mailbox, ``touchflow/data/free_email_domains.txt``)
  and ``email_role`` (a shared inbox such as ``info@``,
  ``touchflow/data/role_email_local_parts.txt``). Empty or invalid: rejected.
* **country**: an ISO 3166 code or a country's name in any language
  (``Iran``, ``UAE``, ``Deutschland``, ``ایران``; see
  :func:`touchflow.domain.places.country_code`) -> alpha-2. One that names no
  country does **not** reject the row: its text is kept in
  ``fields["country_raw"]`` with an ``invalid_country`` warning.
* **phone**: E.164. A number without a country code (``0912 123 4567``, in
  any script's digits) is read in the row's country; without one, in the
  country of the row's time zone, then of the email's ccTLD (see
  :func:`phone_facts`); ``00`` is the international prefix. The country is
  filled from the phone when missing, the time zone from the phone when it
  has exactly one, else from the country. A phone that cannot be read does
  **not** reject the row (a good lead is worth more than its phone number):
  the number is dropped, its text kept in ``fields["phone_raw"]`` and an
  ``invalid_phone`` warning recorded; :func:`reread_phone` reads it again
  once the account's country is known (import, enrichment).
* **timezone**: an IANA name in any case (``asia/tehran`` is read as
  ``Asia/Tehran`` with a ``timezone_case`` warning); anything else rejects the
  row, with the nearest zone as a suggestion (a wrong zone sends at 3 a.m.; a
  missing one is derived).
* **title** -> ``seniority`` (c_level, vp, director, manager, ic) and
  ``department`` (sales, marketing, revops, engineering, finance, it, hr,
  operations, other) by the rules table ``touchflow/data/title_rules.csv``
  (English, Spanish, German, French, Persian, Arabic).
* **domain** (the company, which keys the account): the ``domain`` column,
  else the ``website`` column, else the email's domain unless it is free
  mail; lower-case ASCII (IDNA, ``bücher.de`` -> ``xn--bcher-kva.de``), then
  resolved through the company alias table passed in (``acme.co.uk`` ->
  ``acme.com``).
* **field_sources**: every non-empty input value is recorded as
  ``{"source": <source label>}``, every derived one as ``{"source": "derived"}``;
  the store lets a derived value replace only an empty or derived one.

Rows are refused (:class:`Rejection`, with a reason code for counting and a
message for people) for: an empty or invalid email, an invalid time zone, a
NUL character, text that is not valid UTF-8/Unicode, control characters in a
standard field, and values longer than their column (see :data:`MAX_LENGTHS`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

import idna
import phonenumbers
from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from phonenumbers import timezone as phone_timezone

from touchflow.domain.calendar import (  # _zone_links: tzdata's link table
    _zone_links,
    country_timezone,
    zone_country,
)
from touchflow.domain.phones import NO_COUNTRY_CODE, PhoneNumberError, parse_phone
from touchflow.domain.places import (
    closest_country,
    closest_zone,
    country_code,
    email_country,
    zone_named,
)
from touchflow.domain.prospects import STANDARD_FIELDS, Prospect
from touchflow.domain.text import fold_letters, fold_words

__all__ = [
    "DEPARTMENTS",
    "MAX_FIELD_LENGTH",
    "MAX_LENGTHS",
    "SENIORITIES",
    "Issue",
    "Normalized",
    "Rejection",
    "TitleRule",
    "checked_email",
    "classify_title",
    "fold_title",
    "is_free_mail",
    "is_role_address",
    "normalize",
    "normalize_domain",
    "parse_title_rules",
    "phone_facts",
    "reread_phone",
    "title_rules",
]

SENIORITIES: tuple[str, ...] = ("c_level", "vp", "director", "manager", "ic")
DEPARTMENTS: tuple[str, ...] = (
    "sales",
    "marketing",
    "revops",
    "engineering",
    "finance",
    "it",
    "hr",
    "operations",
    "other",
)

#: Longest accepted input text per field: the column sizes in ``store/schema.py``
#: (PostgreSQL refuses a longer value and would fail the whole batch).
MAX_LENGTHS: dict[str, int] = {
    "email": 320,
    "first_name": 200,
    "last_name": 200,
    "title": 300,
    "company": 300,
    "domain": 255,
    "website": 2000,
    "phone": 64,
    "country": 64,
    "timezone": 64,
    "seniority": 32,
    "department": 32,
}
#: Longest accepted value of any other column (kept in ``fields``).
MAX_FIELD_LENGTH = 10_000

DERIVED = "derived"

# Fields whose text is collapsed to single spaces and must hold no control characters.
_TEXT_FIELDS = frozenset(STANDARD_FIELDS) | {"website", "seniority", "department"}
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_UNKNOWN_ZONE = "Etc/Unknown"


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem in one row: a reason code (for counting) and a message (for people)."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Rejection(Issue):
    """Why a row cannot be loaded. ``code`` is one of ``missing_email``,
    ``invalid_email``, ``invalid_timezone``, ``nul_byte``, ``invalid_utf8``,
    ``control_character``, ``value_too_long`` (the importer adds its own for
    unreadable rows)."""


@dataclass(slots=True)
class Normalized:
    """A prospect ready for the store. ``warnings`` are problems that did not refuse the row."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    company: str | None = None
    domain: str | None = None
    phone: str | None = None
    country: str | None = None
    timezone: str | None = None
    seniority: str | None = None
    department: str | None = None
    email_free: bool = False
    email_role: bool = False
    fields: dict[str, str] = field(default_factory=dict)
    field_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: tuple[Issue, ...] = ()

    def to_prospect(self) -> Prospect:
        return Prospect(
            email=self.email,
            first_name=self.first_name,
            last_name=self.last_name,
            title=self.title,
            company=self.company,
            domain=self.domain,
            phone=self.phone,
            country=self.country,
            timezone=self.timezone,
            fields=dict(self.fields),
        )


# -- email addresses ----------------------------------------------------------


def checked_email(value: str) -> ValidatedEmail:
    """``value`` checked as an email address (syntax and domain, no DNS lookup).

    The one rule for every address touchflow takes: imported prospects, inbound
    leads, the team file. Raises ``ValueError`` saying why it is not one.
    """
    try:
        return validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"email {value!r} is not valid: {exc}") from None


# -- the row ----------------------------------------------------------------


def normalize(
    raw: Mapping[str, str | None],
    *,
    aliases: Mapping[str, str] | None = None,
    source: str = "import",
) -> Normalized | Rejection:
    """Normalize one row of ``{touchflow field: text}``; see the module docstring.

    ``aliases`` maps an alias company domain to its primary domain, both as
    :func:`normalize_domain` returns them. ``source`` labels the input values
    in ``field_sources`` (e.g. ``"import:people.csv"``).
    """
    values: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        text = value.strip()
        if not text:
            continue
        bad = _BAD_CHARS.search(text)
        if bad is not None:
            problem = _bad_char(key, bad.group(), key in _TEXT_FIELDS)
            if problem is not None:
                return problem
        limit = MAX_LENGTHS.get(key, MAX_FIELD_LENGTH)
        if len(text) > limit:
            return Rejection(
                "value_too_long", f"{key} is {len(text)} characters long (at most {limit})"
            )
        if key in _TEXT_FIELDS:
            text = _SPACES.sub(" ", text)
        values[key] = text

    mine = {"source": source}
    derived = {"source": DERIVED}
    sources: dict[str, dict[str, str]] = {}
    warnings: list[Issue] = []
    extra: dict[str, str] = {}

    email = values.pop("email", None)
    if email is None:
        return Rejection("missing_email", "email is empty")
    try:
        checked = checked_email(email)
    except ValueError as exc:
        return Rejection("invalid_email", str(exc))
    sources["email"] = mine
    out = Normalized(email=checked.normalized.lower())
    email_domain = (checked.ascii_domain or checked.domain).lower()
    out.email_free = is_free_mail(email_domain)
    out.email_role = is_role_address(checked.local_part)
    sources["email_free"] = sources["email_role"] = derived

    tz = values.pop("timezone", None)
    if tz is not None:
        zone = _zone_of(tz)
        if zone is None:
            hint = closest_zone(tz)
            also = f" (did you mean {hint!r}?)" if hint else ""
            return Rejection("invalid_timezone", f"timezone {tz!r} is not an IANA time zone{also}")
        if zone != tz:
            warnings.append(Issue("timezone_case", f"timezone {tz!r} read as {zone!r}"))
        out.timezone = zone
        sources["timezone"] = mine

    for name in ("first_name", "last_name", "company"):
        given = values.pop(name, None)
        if given is not None:
            setattr(out, name, given)
            sources[name] = mine

    country = values.pop("country", None)
    if country is not None:
        code = country_code(country)
        if code is None:
            hint = closest_country(country)
            also = f" (did you mean {hint!r}?)" if hint else ""
            warnings.append(
                Issue(
                    "invalid_country",
                    f"country {country!r} is not a country name or ISO 3166 code{also}",
                )
            )
            extra["country_raw"] = country
        else:
            out.country = code
            sources["country"] = mine

    phone = values.pop("phone", None)
    if phone is not None:
        facts = phone_facts(phone, _phone_countries(out, email_domain), out.timezone is None)
        if isinstance(facts, str):
            warnings.append(Issue("invalid_phone", facts))
            extra["phone_raw"] = phone
        else:
            out.phone, phone_region, phone_zone = facts
            sources["phone"] = mine
            if out.country is None and phone_region is not None:
                out.country = phone_region
                sources["country"] = derived
            if out.timezone is None and phone_zone is not None:
                out.timezone = phone_zone
                sources["timezone"] = derived
    if out.timezone is None and out.country is not None:
        zone = country_timezone(out.country)
        if zone is not None:
            out.timezone = zone
            sources["timezone"] = derived

    title = values.pop("title", None)
    if title is not None:
        out.title = title
        sources["title"] = mine
        out.seniority, out.department = classify_title(title)
        if out.seniority is not None:
            sources["seniority"] = derived
        if out.department is not None:
            sources["department"] = derived
    for name, allowed in (("seniority", SENIORITIES), ("department", DEPARTMENTS)):
        given = values.pop(name, None)
        if given is None:
            continue
        value = given.lower().replace("-", "_").replace(" ", "_")
        if value in allowed:
            setattr(out, name, value)
            sources[name] = mine
        else:
            warnings.append(
                Issue(f"invalid_{name}", f"{name} {given!r} is not one of {', '.join(allowed)}")
            )
            extra[f"{name}_raw"] = given

    domain, domain_source = _company_domain(values, email_domain, out.email_free, warnings, extra)
    if domain is not None:
        primary = aliases.get(domain, domain) if aliases else domain
        if is_free_mail(primary):
            warnings.append(
                Issue("free_mail_domain", f"{primary} is a free-mail provider, not a company")
            )
        else:
            out.domain = primary
            sources["domain"] = mine if domain_source == "input" else derived

    for key, text in values.items():
        extra[key] = text
    for key in extra:
        sources[key] = mine
    out.fields = extra
    out.field_sources = sources
    out.warnings = tuple(warnings)
    return out


def _bad_char(key: str, char: str, standard: bool) -> Rejection | None:
    code = ord(char)
    if code == 0:
        return Rejection("nul_byte", f"{key} contains a NUL character")
    if 0xD800 <= code <= 0xDFFF:
        what = f"byte 0x{code - 0xDC00:02X}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        return Rejection("invalid_utf8", f"{key} is not valid UTF-8 text ({what})")
    if standard:
        return Rejection("control_character", f"{key} contains control character U+{code:04X}")
    return None


def _company_domain(
    values: dict[str, str],
    email_domain: str,
    free: bool,
    warnings: list[Issue],
    extra: dict[str, str],
) -> tuple[str | None, str]:
    """The company domain and where it came from ("input" or "derived")."""
    given = values.pop("domain", None)
    if given is not None:
        try:
            return normalize_domain(given), "input"
        except ValueError as exc:
            warnings.append(Issue("invalid_domain", str(exc)))
            extra["domain_raw"] = given
    website = values.get("website")  # stays in fields as well
    if website is not None:
        try:
            return normalize_domain(website), "derived"
        except ValueError as exc:
            warnings.append(Issue("invalid_website", str(exc)))
    if not free:
        try:
            return normalize_domain(email_domain), "derived"
        except ValueError:  # pragma: no cover - email_validator checked it
            pass
    return None, "derived"


@lru_cache(maxsize=1024)
def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def _zone_of(text: str) -> str | None:
    """The IANA zone ``text`` names, in its own case (``asia/tehran`` -> ``Asia/Tehran``)."""
    # The name in tzdata's case first: on a case-insensitive file system ZoneInfo would
    # also take "asia/tehran", and store it so.
    return zone_named(text) or (text if _zone_ok(text) else None)


def _phone_countries(out: Normalized, email_domain: str) -> tuple[str, ...]:
    """The countries a number without a country code is read in, most telling first.

    The row's country when it has one (the row says where the person is); else
    the country of its time zone, then of its e-mail's ccTLD. The account's
    country comes later: :func:`phone_facts` again, once enrichment or the
    store knows it.
    """
    if out.country is not None:
        return (out.country,)
    found: list[str] = []
    if out.timezone is not None and (code := zone_country(out.timezone)) is not None:
        found.append(code)
    if (code := email_country(email_domain)) is not None and code not in found:
        found.append(code)
    return tuple(found)


def phone_facts(
    raw: str, countries: Sequence[str], want_zone: bool = True
) -> tuple[str, str | None, str | None] | str:
    """``(e164, country, zone)`` of a phone, or the message saying why it cannot be read.

    A number without a country code is read in each of ``countries`` in turn
    (the first where it is a valid number wins). ``country`` is the number's
    own (None for non-geographic numbers); ``zone`` its time zone when it has
    exactly one, looked up only when ``want_zone`` (libphonenumber costs ~20 us
    per lookup, the bulk of a row's time).
    """
    error: PhoneNumberError | None = None
    for region in countries or (None,):
        try:
            number, number_region = parse_phone(raw, region)
            break
        except PhoneNumberError as exc:
            error = error or exc
    else:
        assert error is not None
        if error.reason == NO_COUNTRY_CODE and not countries:
            return (
                f"invalid phone number {raw!r}: no country code, and the row names no "
                "country (write it with + or 00 and the country code, or fill the "
                "country or timezone column)"
            )
        return str(error)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    zone = None
    if want_zone:
        zones = {
            _canonical_zone(z)
            for z in phone_timezone.time_zones_for_number(number)
            if z != _UNKNOWN_ZONE
        }
        zone = zones.pop() if len(zones) == 1 else None
        if zone is not None and not _zone_ok(zone):
            zone = None
    return e164, number_region, zone


def reread_phone(raw: str, country: str, timezone: str | None) -> tuple[str, str | None] | None:
    """A phone set aside for want of a country (``phone_raw``), read in ``country`` now it is
    known: ``(e164, zone)``, ``zone`` being the time zone to fill when ``timezone`` is empty
    (the phone's, else the country's). None when it still cannot be read.
    """
    facts = phone_facts(raw, (country,), timezone is None)
    if isinstance(facts, str):
        return None
    e164, _, zone = facts
    if timezone is not None:
        return e164, None
    return e164, zone or country_timezone(country)


def _canonical_zone(name: str) -> str:
    # libphonenumber still answers some legacy names (Asia/Calcutta): store canonical ones.
    return _zone_links().get(name, name)


# -- email flags ------------------------------------------------------------


def _data_lines(name: str) -> list[str]:
    text = resources.files("touchflow").joinpath("data", name).read_text(encoding="utf-8")
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


@cache
def _free_mail() -> tuple[frozenset[str], frozenset[str]]:
    exact, wild = set(), set()
    for line in _data_lines("free_email_domains.txt"):
        domain = line.lower()
        if domain.endswith(".*"):
            wild.add(domain[:-2])
        else:
            exact.add(domain)
    return frozenset(exact), frozenset(wild)


@cache
def _role_parts() -> frozenset[str]:
    return frozenset(
        _ROLE_SEPARATORS.sub("", line.lower()) for line in _data_lines("role_email_local_parts.txt")
    )


_ROLE_SEPARATORS = re.compile(r"[._-]")


def is_free_mail(domain: str) -> bool:
    """Whether ``domain`` is a free-mail provider (``gmail.com``, ``yahoo.co.uk``, ...)."""
    exact, wild = _free_mail()
    domain = domain.lower().rstrip(".")
    if domain in exact:
        return True
    name, _, suffix = domain.partition(".")
    # "yahoo.*" is yahoo under a public suffix (yahoo.fr, yahoo.co.uk), not yahoo.example.org.
    return name in wild and 0 < suffix.count(".") + 1 <= 2 and len(suffix) <= 6


def is_role_address(local_part: str) -> bool:
    """Whether an address's local part names a role (``info``, ``sales``, ``no-reply``...)."""
    local = local_part.lower().split("+", 1)[0]
    return _ROLE_SEPARATORS.sub("", local) in _role_parts()


# -- domains ----------------------------------------------------------------

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_PORT = re.compile(r":\d*$")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@lru_cache(maxsize=1 << 15)
def normalize_domain(value: str) -> str:
    """A company domain from a domain, host or URL: lower-case ASCII, no ``www.``.

    ``"https://www.Acme.com/about"`` -> ``"acme.com"``, ``"Bücher.de"`` ->
    ``"xn--bcher-kva.de"``. Raises ``ValueError`` naming the input when it
    is not a domain name.
    """
    host = _host_of(value)
    if host.startswith("www.") and host.count(".") >= 2:
        host = host[4:]
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"{value!r} is not a domain name ({exc})") from None
    labels = host.split(".")
    if (
        len(labels) < 2
        or len(host) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f"{value!r} is not a domain name")
    return host


def domain_key(value: str) -> str:
    """A domain to look a company up or compare by, never raising.

    :func:`normalize_domain` when ``value`` is a domain, host or URL; for text
    that is not a domain name, the same trimming without the checks (lower
    case, no scheme, path, port or trailing dot), so a lookup still matches
    what the other side wrote. Enrichers and CRM connectors key on it.
    """
    try:
        return normalize_domain(value)
    except ValueError:
        return _host_of(value)


def _host_of(value: str) -> str:
    """The host part of a domain, host or URL: lower case, no scheme, path, port or final dot."""
    host = _SCHEME.sub("", value.strip().lower())
    host = re.split(r"[/?#\\]", host, maxsplit=1)[0].rsplit("@", 1)[-1]
    return _PORT.sub("", host).strip().rstrip(".")


# -- titles -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TitleRule:
    """One row of the title rules table."""

    language: str
    kind: str  # seniority | department
    value: str
    pattern: re.Pattern[str]
    priority: int
    line: int


def fold_title(title: str) -> str:
    """The text title rules match: case-folded, accent-folded, punctuation as single spaces."""
    return fold_words(title)


def parse_title_rules(text: str, path: str = "title_rules.csv") -> tuple[TitleRule, ...]:
    """Parse a rules table (see ``touchflow/data/title_rules.csv``), highest priority first.

    Raises ``ValueError`` naming ``path:line`` for a bad kind, value, regex or priority.
    """
    rules: list[TitleRule] = []
    lines = text.splitlines()
    header = next(csv.reader(lines[:1]), [])
    expected = ["language", "kind", "value", "pattern", "priority"]
    if [h.strip() for h in header] != expected:
        raise ValueError(f"{path}:1: the header must be {','.join(expected)}")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = next(csv.reader([line]))
        if len(cells) != 5:
            raise ValueError(f"{path}:{number}: expected 5 cells, found {len(cells)}")
        language, kind, value, pattern, priority = (c.strip() for c in cells)
        allowed = {"seniority": SENIORITIES, "department": DEPARTMENTS}.get(kind)
        if allowed is None:
            raise ValueError(f"{path}:{number}: kind {kind!r} is not seniority or department")
        if value not in allowed:
            raise ValueError(f"{path}:{number}: {kind} {value!r} is not one of {allowed}")
        try:
            compiled = re.compile(fold_letters(pattern), re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"{path}:{number}: bad pattern {pattern!r}: {exc}") from None
        try:
            rank = int(priority)
        except ValueError:
            raise ValueError(f"{path}:{number}: priority {priority!r} is not a number") from None
        rules.append(TitleRule(language, kind, value, compiled, rank, number))
    rules.sort(key=lambda r: (-r.priority, r.line))
    return tuple(rules)


@cache
def title_rules() -> tuple[TitleRule, ...]:
    """The packaged rules table, loaded once."""
    path = resources.files("touchflow").joinpath("data", "title_rules.csv")
    return parse_title_rules(path.read_text(encoding="utf-8"), "touchflow/data/title_rules.csv")


@lru_cache(maxsize=1 << 16)
def classify_title(title: str) -> tuple[str | None, str | None]:
    """``(seniority, department)`` of a job title; either is None when no rule matches."""
    text = fold_title(title)
    found: dict[str, str] = {}
    for rule in title_rules():
        if rule.kind not in found and rule.pattern.search(text):
            found[rule.kind] = rule.value
            if len(found) == 2:
                break
    return found.get("seniority"), found.get("department")
