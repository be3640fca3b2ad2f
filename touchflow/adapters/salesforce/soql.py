"""SOQL text: string and datetime literals, Salesforce's datetimes, a domain's spellings.

Pure functions, no HTTP: what :class:`~touchflow.adapters.salesforce.crm.SalesforceCrm`
puts into its queries and reads back from them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from touchflow.domain.normalize import domain_key

__all__ = ["domain_variants", "parse_sf_datetime", "soql_datetime", "soql_quote"]


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal, quotes and backslashes escaped."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )
    return f"'{escaped}'"


def soql_datetime(when: datetime) -> str:
    """A SOQL datetime literal (UTC, whole seconds: SOQL takes no fractions); naive means UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_sf_datetime(value: str) -> datetime:
    """Salesforce's ``2024-05-01T10:00:00.000+0000`` (or ``Z``) as an aware datetime."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+0000"
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, fmt).astimezone(UTC)
        except ValueError:
            continue
    return datetime.fromisoformat(value).astimezone(UTC)


def domain_variants(domain: str) -> list[str]:
    """The ways a domain is commonly typed into the free-text Account.Website field."""
    d = domain_key(domain)
    hosts = [d, f"www.{d}"]
    bare = [f"{prefix}{host}" for prefix in ("", "http://", "https://") for host in hosts]
    return bare + [f"{v}/" for v in bare]
