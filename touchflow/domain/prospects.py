"""The prospect as the engine and the templates see it.

Files of prospects are read once, by the importer's readers and
:mod:`touchflow.domain.normalize` (``import``, ``simulate`` and ``enroll``
alike): columns ``email`` (required), ``first_name``, ``last_name``,
``title``, ``company``, ``domain``, ``phone``, ``country`` and ``timezone``;
any other column is kept in :attr:`Prospect.fields` and reachable in
templates as ``prospect.fields.<column>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def normalize_email(email: str) -> str:
    """Lower-case and trim an address (local parts are case-insensitive in practice)."""
    return email.strip().lower()
