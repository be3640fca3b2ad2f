"""Enrich accounts in the store: look domains up in batches, merge by the provenance rule, write.

The caller owns the transaction (like every repository here). Per batch of
``batch_size`` accounts: one ``enricher.lookup`` call, one ``executemany``
update of the accounts that change, then one read and one ``executemany`` of
their prospects whose ``country`` is empty (or itself derived), which get the
account's country. A phone such a prospect's import could not read for want
of a country (kept as ``fields["phone_raw"]``) is read again in that country:
it becomes the prospect's E.164 ``phone`` (its provenance stays the file it
came from) and, when the prospect has no time zone, gives one (derived).

What may be written is decided by :func:`touchflow.domain.enrich.merge`: empty or
enricher-written fields only, never a value whose source is an import, a
human or the CRM. Each update is also guarded by the row's ``updated_at`` as
read: a row someone changed between the read and the write keeps that change
and is picked up by the next run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from touchflow.domain.batching import chunks
from touchflow.domain.enrich import (
    ENRICH_PREFIX,
    ENRICHED_FIELDS,
    Firmographics,
    may_fill,
    merge,
    provenance,
)
from touchflow.domain.normalize import DERIVED, domain_key, reread_phone
from touchflow.ports import Enricher
from touchflow.store.schema import accounts, prospects

__all__ = ["PROSPECT_COUNTRY_SOURCE", "EnrichReport", "enrich_accounts"]

# A prospect's country copied from its account: derived, so a later run may refresh it.
PROSPECT_COUNTRY_SOURCE = f"{ENRICH_PREFIX}account"


@dataclass(frozen=True)
class EnrichReport:
    """What a run did: accounts looked up, changed, found with nothing to change, not found."""

    looked_up: int = 0
    enriched: int = 0
    unchanged: int = 0
    not_found: int = 0
    prospects_updated: int = 0

    def __add__(self, other: EnrichReport) -> EnrichReport:
        return EnrichReport(
            self.looked_up + other.looked_up,
            self.enriched + other.enriched,
            self.unchanged + other.unchanged,
            self.not_found + other.not_found,
            self.prospects_updated + other.prospects_updated,
        )


_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.domain,
    *(accounts.c[name] for name in ENRICHED_FIELDS),
    accounts.c.field_sources,
    accounts.c.updated_at,
)


def _bind(name: str) -> Any:
    return bindparam(f"b_{name}", type_=accounts.c[name].type)


_UPDATE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.id == bindparam("b_id"), accounts.c.updated_at == bindparam("b_seen"))
    .values(
        {name: _bind(name) for name in ENRICHED_FIELDS}
        | {"field_sources": _bind("field_sources"), "updated_at": _bind("updated_at")}
    )
)


def _prospect_update(*columns: str) -> Any:
    return (
        update(prospects)
        .where(prospects.c.id == bindparam("b_id"), prospects.c.updated_at == bindparam("b_seen"))
        .values({name: bindparam(f"b_{name}", type_=prospects.c[name].type) for name in columns})
    )


_UPDATE_PROSPECT = _prospect_update("country", "field_sources", "updated_at")
# For the few whose raw phone the country made readable: the wider row costs more to write.
_UPDATE_PROSPECT_PHONE = _prospect_update(
    "country", "phone", "timezone", "fields", "field_sources", "updated_at"
)


def enrich_accounts(
    conn: Connection,
    enricher: Enricher,
    now: datetime,
    *,
    domains: Sequence[str] | None = None,
    batch_size: int = 1000,
) -> EnrichReport:
    """Enrich every account (or those of ``domains``) with ``enricher``; returns the counts.

    Errors of the enricher (:class:`~touchflow.errors.RetryableError`,
    :class:`~touchflow.errors.FatalError`) propagate; batches written before
    stay in the caller's transaction.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if now.tzinfo is None:
        raise ValueError("naive datetime given as now")
    report = EnrichReport()
    for rows in _batches(conn, domains, batch_size):
        report += _enrich_batch(conn, enricher, rows, now)
    return report


_BY_DOMAINS = (
    select(*_ACCOUNT_COLUMNS)
    .where(accounts.c.domain.in_(bindparam("domains", expanding=True)))
    .order_by(accounts.c.id)
)  # built once: an inbound lead enriches one account per request (see store.prebuilt)


def _batches(
    conn: Connection, domains: Sequence[str] | None, size: int
) -> Iterator[Sequence[Row[Any]]]:
    if domains is not None:
        wanted = list(dict.fromkeys(d for d in (domain_key(x) for x in domains) if d))
        for chunk in chunks(wanted, size):
            rows = conn.execute(_BY_DOMAINS, {"domains": list(chunk)}).all()
            if rows:
                yield rows
        return
    last_id = 0
    while True:
        stmt = (
            select(*_ACCOUNT_COLUMNS)
            .where(accounts.c.id > last_id)
            .order_by(accounts.c.id)
            .limit(size)
        )
        rows = conn.execute(stmt).all()
        if not rows:
            return
        yield rows
        last_id = rows[-1].id


def _enrich_batch(
    conn: Connection, enricher: Enricher, rows: Sequence[Row[Any]], now: datetime
) -> EnrichReport:
    found = enricher.lookup([row.domain for row in rows])
    updates: list[dict[str, Any]] = []
    countries: dict[int, tuple[str, str, Any]] = {}  # account id -> (country, domain, source)
    enriched = unchanged = not_found = 0
    for row in rows:
        current = {name: row._mapping[name] for name in ENRICHED_FIELDS}
        sources = dict(row.field_sources or {})
        firm: Firmographics | None = found.get(row.domain)
        if firm is None:
            not_found += 1
        else:
            changes, sources = merge(current, sources, firm, firm.source or enricher.name, now)
            if changes:
                enriched += 1
                current.update(changes)
                params = {f"b_{name}": value for name, value in current.items()}
                params |= {
                    "b_id": row.id,
                    "b_seen": row.updated_at,
                    "b_field_sources": sources,
                    "b_updated_at": now,
                }
                updates.append(params)
            else:
                unchanged += 1
        if current["country"]:
            origin = (sources.get("country") or {}).get("source")
            countries[row.id] = (current["country"], row.domain, origin)
    if updates:
        conn.execute(_UPDATE_ACCOUNT, updates)
    prospects_updated = _copy_country(conn, countries, now)
    return EnrichReport(len(rows), enriched, unchanged, not_found, prospects_updated)


def _copy_country(
    conn: Connection, countries: dict[int, tuple[str, str, Any]], now: datetime
) -> int:
    """Give prospects with an empty (or derived) country their account's country, and read
    their phones kept raw for want of one again in it."""
    if not countries:
        return 0
    stmt = select(
        prospects.c.id,
        prospects.c.account_id,
        prospects.c.country,
        prospects.c.phone,
        prospects.c.timezone,
        prospects.c.field_sources,
        prospects.c.updated_at,
    ).where(prospects.c.account_id.in_(list(countries)))
    at = provenance(PROSPECT_COUNTRY_SOURCE, now)["at"]
    updates: dict[int, dict[str, Any]] = {}
    no_phone: dict[int, str | None] = {}  # prospect id -> its time zone
    for p in conn.execute(stmt):
        country, domain, origin = countries[p.account_id]
        sources = dict(p.field_sources or {})
        if p.country == country or not may_fill(p.country, sources.get("country")):
            continue
        entry: dict[str, Any] = {"source": PROSPECT_COUNTRY_SOURCE, "at": at, "via": domain}
        if origin:
            entry["origin"] = origin
        sources["country"] = entry
        updates[p.id] = {
            "b_id": p.id,
            "b_seen": p.updated_at,
            "b_country": country,
            "b_field_sources": sources,
            "b_updated_at": now,
        }
        if p.phone is None:
            no_phone[p.id] = p.timezone
    with_phone = _read_raw_phones(conn, updates, no_phone)
    if updates:
        conn.execute(_UPDATE_PROSPECT, list(updates.values()))
    if with_phone:
        conn.execute(_UPDATE_PROSPECT_PHONE, with_phone)
    return len(updates) + len(with_phone)


def _read_raw_phones(
    conn: Connection, updates: dict[int, dict[str, Any]], no_phone: dict[int, str | None]
) -> list[dict[str, Any]]:
    """The updates (taken out of ``updates``) of prospects whose raw phone their new country
    makes readable. Their ``fields`` are read here, for them alone: decoding every
    prospect's would cost more than the rest of the copy."""
    out: list[dict[str, Any]] = []
    for chunk in chunks(list(no_phone)):
        stmt = select(prospects.c.id, prospects.c.fields).where(prospects.c.id.in_(chunk))
        for p in conn.execute(stmt):
            raw = (p.fields or {}).get("phone_raw")
            row = updates[p.id]
            found = reread_phone(raw, row["b_country"], no_phone[p.id]) if raw else None
            if found is None:
                continue
            phone, zone = found
            sources = row["b_field_sources"]
            sources["phone"] = sources.pop("phone_raw", None) or {"source": DERIVED}
            if zone is not None:
                sources["timezone"] = {"source": DERIVED}
            row |= {
                "b_phone": phone,
                "b_timezone": zone or no_phone[p.id],
                "b_fields": {k: v for k, v in p.fields.items() if k != "phone_raw"},
            }
            out.append(updates.pop(p.id))
    return out
