"""Enrichment: firmographics for a company domain, and the rule for writing them down.

Pure core: no HTTP, no database. An :class:`Enricher` answers a batch of
domains with :class:`Firmographics`; :func:`merge` decides which of those values
may be written over what an account already holds, and records where every
written value came from.

Provenance lives next to the values, in the ``field_sources`` JSON of an
account or prospect::

    {"industry": {"source": "import:csv", "at": "2026-11-28T09:00:00+00:00"},
     "employees": {"source": "enrich:offline", "at": "2026-11-29T10:00:00+00:00"}}

The rule (:func:`may_fill`): an enricher writes a field only when it is empty,
or when the value there was itself written by an enricher (``enrich:*``), so a
fresher lookup may correct an older one. Anything else (``import:*``,
``human``, ``crm``, or a value with no recorded source at all) is a person's or
a system of record's word and is never overwritten.

Enrichers (the :class:`~touchflow.ports.Enricher` port) live in
:mod:`touchflow.adapters.enrichment`: a local CSV (``OfflineEnricher``),
several in order, first hit wins (``ChainEnricher``), and a REST provider with
cache, rate limit and retries (``HttpEnricher``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CSV_COLUMNS",
    "ENRICHED_FIELDS",
    "ENRICH_PREFIX",
    "REVENUE_BANDS",
    "Firmographics",
    "is_empty",
    "may_fill",
    "merge",
    "provenance",
    "revenue_band_of",
]

ENRICH_PREFIX = "enrich:"

# The account columns an enricher may fill, in display order.
ENRICHED_FIELDS = ("name", "industry", "employees", "revenue_band", "country", "technologies")

CSV_COLUMNS = ("domain", *ENRICHED_FIELDS)

# Annual revenue, USD.
REVENUE_BANDS = ("<1M", "1-10M", "10-50M", "50-250M", "250M-1B", "1B+")


_BAND_FLOORS = (
    (1e9, "1B+"),
    (250e6, "250M-1B"),
    (50e6, "50-250M"),
    (10e6, "10-50M"),
    (1e6, "1-10M"),
)
_MONEY = re.compile(r"^\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([KMBT]?)", re.IGNORECASE)
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def revenue_band_of(value: Any) -> str | None:
    """One of :data:`REVENUE_BANDS` for a band name, a USD amount or a range like ``"$10M-$50M"``.

    A range is placed by its lower bound (providers publish ranges that straddle
    ours: ``"$100M-$250M"`` is ``"50-250M"``, ``"$500M-$1B"`` is ``"250M-1B"``).
    Anything else is ``None``: unknown, never a guess.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        amount = float(value)
    else:
        text = str(value).strip()
        if text in REVENUE_BANDS:
            return text
        if text.startswith("<"):
            text = text[1:]
            match = _MONEY.match(text)
            if match is None:
                return None
            return (
                "<1M"
                if float(match[1].replace(",", "")) * _SCALE[match[2].upper()] <= 1e6
                else None
            )
        match = _MONEY.match(text)
        if match is None:
            return None
        amount = float(match[1].replace(",", "")) * _SCALE[match[2].upper()]
    if amount < 0:
        return None
    for floor, band in _BAND_FLOORS:
        if amount >= floor:
            return band
    return "<1M"


@dataclass(frozen=True, slots=True)
class Firmographics:
    """What an enricher knows about one company; ``None``/``()`` means unknown.

    ``source`` is the name of the enricher that found it (a
    :class:`ChainEnricher` passes its members' names through), so provenance
    names the real origin.
    """

    domain: str
    name: str | None = None
    industry: str | None = None
    employees: int | None = None
    revenue_band: str | None = None
    country: str | None = None
    technologies: tuple[str, ...] = ()
    source: str = field(default="", compare=False)

    def values(self) -> dict[str, Any]:
        """The known values, as the database stores them (technologies as a list)."""
        out: dict[str, Any] = {}
        for name in ENRICHED_FIELDS:
            value = getattr(self, name)
            if name == "technologies":
                value = list(value) if value else None
            elif isinstance(value, str):
                value = value.strip() or None
            if value is not None:
                out[name] = value
        if "country" in out:
            out["country"] = out["country"].upper()
        return out


# -- the merge rule ----------------------------------------------------------


def is_empty(value: Any) -> bool:
    """``None``, a blank string or an empty list: nothing a person wrote."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return not value
    return False


def may_fill(current: Any, recorded: Mapping[str, Any] | None) -> bool:
    """May an enricher write this field? Only if empty or last written by an enricher."""
    if is_empty(current):
        return True
    source = (recorded or {}).get("source")
    return isinstance(source, str) and source.startswith(ENRICH_PREFIX)


def provenance(source: str, now: datetime) -> dict[str, str]:
    """``{"source": "enrich:<name>", "at": <UTC ISO 8601>}`` for a value written at ``now``."""
    if now.tzinfo is None:
        raise ValueError("naive datetime given as now")
    label = source if source.startswith(ENRICH_PREFIX) else f"{ENRICH_PREFIX}{source}"
    return {"source": label, "at": now.astimezone(UTC).isoformat()}


def merge(
    current: Mapping[str, Any],
    sources: Mapping[str, Any] | None,
    found: Firmographics,
    source: str,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decide what ``found`` may change; returns ``(changes, new_sources)``.

    ``current`` holds the record's values by field name, ``sources`` its
    ``field_sources``. ``changes`` has only the fields whose value changes
    (technologies as a list); ``new_sources`` is the whole ``field_sources``
    to store, with ``{"source": "enrich:<source>", "at": ...}`` for every
    changed field and every other entry kept as it was. An enricher's value
    equal to what is there changes nothing, not even its provenance, so a
    rerun writes nothing. Neither input is modified.
    """
    recorded: Mapping[str, Any] = sources or {}
    changes: dict[str, Any] = {}
    new_sources: dict[str, Any] = dict(recorded)
    stamp: dict[str, str] | None = None
    for name, value in found.values().items():
        have = current.get(name)
        if not may_fill(have, recorded.get(name)):
            continue
        if _same(have, value):
            continue
        if stamp is None:
            stamp = provenance(source, now)
        changes[name] = value
        new_sources[name] = dict(stamp)
    return changes, new_sources


def _same(have: Any, value: Any) -> bool:
    if isinstance(value, list):
        return isinstance(have, list | tuple) and list(have) == value
    if isinstance(value, str) and isinstance(have, str):
        return have.strip() == value
    return bool(have == value)
