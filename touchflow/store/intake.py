"""The store side of prospect import: accounts by domain, prospects by email, in batches.

:func:`load_batch` writes one batch of :class:`~touchflow.domain.normalize.Normalized`
rows inside the caller's transaction with a fixed handful of queries (accounts:
select, insert, select; prospects: select, insert, update; the consent and
missing-data updates), never one query per row.

Merge rules for a prospect that already exists (by email):

* an empty input value never clears a stored one (a file without a ``title``
  column keeps the titles already stored);
* an input value replaces the stored one;
* a derived value (``field_sources[col]["source"] == "derived"``: a time zone
  guessed from the phone, a seniority read from the title) replaces only an
  empty or derived value, never one a person imported or typed;
* ``fields`` are merged key by key; a valid phone drops a stale ``phone_raw``;
* ``field_sources`` keep the provenance of values that did not change, so the
  same data imported from another file is still "unchanged";
* a row that changes nothing writes nothing.

Accounts are keyed on their primary domain: a missing one is created with the
first company name seen for it; an existing one only gets a name when it has
none (accounts are edited and enriched elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from touchflow.domain.batching import chunks
from touchflow.domain.normalize import DERIVED, Normalized
from touchflow.domain.prospects import Prospect
from touchflow.store.prebuilt import Insert, per_dialect
from touchflow.store.prospects import record_sms_consent, release_missing_data
from touchflow.store.schema import accounts, prospects

__all__ = ["PROSPECT_COLUMNS", "IntakeCounts", "account_countries", "load_batch"]

#: Prospect columns the importer writes, besides email, fields, field_sources and account_id.
PROSPECT_COLUMNS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "title",
    "company",
    "domain",
    "phone",
    "country",
    "timezone",
    "seniority",
    "department",
    "email_free",
    "email_role",
)
_WRITTEN = (*PROSPECT_COLUMNS, "account_id", "fields", "field_sources")

# Built once (see store.prebuilt): an inbound lead runs load_batch once per request.
_EXISTING = select(prospects.c.id, prospects.c.email, *(prospects.c[c] for c in _WRITTEN)).where(
    prospects.c.email.in_(bindparam("emails", expanding=True))
)
_INSERT_PROSPECTS = prospects.insert()
_ACCOUNTS_BY_DOMAIN = select(
    accounts.c.id, accounts.c.domain, accounts.c.name, accounts.c.field_sources
).where(accounts.c.domain.in_(bindparam("domains", expanding=True)))
_COUNTRIES_BY_DOMAIN = select(accounts.c.domain, accounts.c.country).where(
    accounts.c.domain.in_(bindparam("domains", expanding=True)), accounts.c.country.is_not(None)
)


@per_dialect
def _insert_accounts(insert: Insert) -> Any:
    # Another import may create the same account meanwhile: its row wins.
    return insert(accounts).on_conflict_do_nothing(index_elements=["domain"])


# IN lists and multi-row statements stay under SQLite's bound-parameter limit.


@dataclass
class IntakeCounts:
    """What one batch did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    accounts_created: int = 0

    def add(self, other: IntakeCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.accounts_created += other.accounts_created


def load_batch(conn: Connection, rows: Sequence[Normalized], now: datetime) -> IntakeCounts:
    """Upsert accounts (by domain) and prospects (by email); see the module docstring.

    Rows with the same email: the first wins, later ones count as unchanged.
    """
    counts = IntakeCounts()
    unique: dict[str, Normalized] = {}
    for row in rows:
        if row.email in unique:
            counts.unchanged += 1
        else:
            unique[row.email] = row
    if not unique:
        return counts

    account_ids, counts.accounts_created = _ensure_accounts(conn, unique.values(), now)

    existing: dict[str, Any] = {}
    for chunk in chunks(list(unique)):
        for found in conn.execute(_EXISTING, {"emails": list(chunk)}):
            existing[found.email] = found

    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for email, row in unique.items():
        account_id = account_ids.get(row.domain) if row.domain else None
        old = existing.get(email)
        if old is None:
            values = {c: getattr(row, c) for c in PROSPECT_COLUMNS}
            new_rows.append(
                {
                    "email": email,
                    **values,
                    "account_id": account_id,
                    "fields": row.fields,
                    "field_sources": row.field_sources,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            continue
        merged = _merge(old, row, account_id)
        if merged is None:
            counts.unchanged += 1
        else:
            changed.append({"b_id": old.id, **merged, "updated_at": now})

    for batch in chunks(new_rows):
        conn.execute(_INSERT_PROSPECTS, list(batch))
    if changed:
        conn.execute(
            update(prospects)
            .where(prospects.c.id == bindparam("b_id"))
            .values({c: bindparam(c) for c in (*_WRITTEN, "updated_at")}),
            changed,
        )
        release_missing_data(conn, [c["b_id"] for c in changed], now)
    record_sms_consent(conn, [_consent_view(r) for r in unique.values()], now)
    counts.new = len(new_rows)
    counts.updated = len(changed)
    return counts


def account_countries(conn: Connection, domains: Iterable[str]) -> dict[str, str]:
    """``{domain: country}`` of the stored accounts of ``domains`` that have a country."""
    found: dict[str, str] = {}
    for chunk in chunks(list(domains)):
        for row in conn.execute(_COUNTRIES_BY_DOMAIN, {"domains": list(chunk)}):
            found[row.domain] = row.country
    return found


def _merge(old: Any, row: Normalized, account_id: int | None) -> dict[str, Any] | None:
    """The full set of written values for an existing prospect, or None if nothing changes."""
    old_sources: dict[str, Any] = dict(old.field_sources or {})
    sources = dict(old_sources)
    values = {c: getattr(old, c) for c in PROSPECT_COLUMNS}
    dirty = False
    for col in PROSPECT_COLUMNS:
        new = getattr(row, col)
        if new is None:
            continue
        source = row.field_sources.get(col) or {"source": DERIVED}
        current = values[col]
        if current is not None and _is_derived(source) and not _is_derived(old_sources.get(col)):
            continue  # a guess never replaces a value someone imported or typed
        if current != new:
            values[col] = new
            sources[col] = source
            dirty = True
        elif col not in sources:
            sources[col] = source  # provenance for a row stored before field_sources existed

    fields = dict(old.fields or {})
    for key, text in row.fields.items():
        if fields.get(key) != text:
            fields[key] = text
            sources[key] = row.field_sources.get(key) or {"source": DERIVED}
        elif key not in sources and key in row.field_sources:
            sources[key] = row.field_sources[key]
    if row.phone is not None and "phone_raw" not in row.fields and "phone_raw" in fields:
        del fields["phone_raw"]
        sources.pop("phone_raw", None)
    dirty = dirty or fields != (old.fields or {})

    # The account follows the domain this row brought, once that is the stored domain.
    new_account = old.account_id
    if account_id is not None and values["domain"] == row.domain:
        new_account = account_id
    dirty = dirty or new_account != old.account_id or sources != old_sources
    if not dirty:
        return None
    return {**values, "account_id": new_account, "fields": fields, "field_sources": sources}


def _is_derived(source: Any) -> bool:
    # No provenance (a row stored before field_sources existed) counts as a person's value.
    return isinstance(source, dict) and source.get("source") == DERIVED


def _ensure_accounts(
    conn: Connection, rows: Iterable[Normalized], now: datetime
) -> tuple[dict[str, int], int]:
    """``{domain: account id}`` for every row's domain, creating missing accounts."""
    wanted: dict[str, Normalized] = {}
    for row in rows:
        if row.domain is None:
            continue
        first = wanted.get(row.domain)
        if first is None or (first.company is None and row.company is not None):
            wanted[row.domain] = row
    if not wanted:
        return {}, 0
    ids: dict[str, int] = {}
    unnamed: list[dict[str, Any]] = []
    for chunk in chunks(list(wanted)):
        for acc in conn.execute(_ACCOUNTS_BY_DOMAIN, {"domains": list(chunk)}):
            ids[acc.domain] = acc.id
            company = wanted[acc.domain].company
            if acc.name is None and company is not None:
                sources = dict(acc.field_sources or {})
                sources["name"] = wanted[acc.domain].field_sources.get("company", {})
                unnamed.append(
                    {"b_id": acc.id, "name": company, "field_sources": sources, "updated_at": now}
                )
    missing = [d for d in wanted if d not in ids]
    new_rows = [_account_row(domain, wanted[domain], now) for domain in missing]
    for batch in chunks(new_rows):
        conn.execute(_insert_accounts(conn), list(batch))
    for chunk in chunks(missing):
        for acc in conn.execute(_ACCOUNTS_BY_DOMAIN, {"domains": list(chunk)}):
            ids[acc.domain] = acc.id
    if unnamed:
        conn.execute(
            update(accounts)
            .where(accounts.c.id == bindparam("b_id"), accounts.c.name.is_(None))
            .values(
                name=bindparam("name"),
                field_sources=bindparam("field_sources"),
                updated_at=bindparam("updated_at"),
            ),
            unnamed,
        )
    return ids, len(missing)


def _account_row(domain: str, row: Normalized, now: datetime) -> dict[str, Any]:
    sources = {"domain": row.field_sources.get("domain", {"source": DERIVED})}
    if row.company is not None:
        sources["name"] = row.field_sources.get("company", {"source": DERIVED})
    return {
        "domain": domain,
        "name": row.company,
        "field_sources": sources,
        "created_at": now,
        "updated_at": now,
    }


def _consent_view(row: Normalized) -> Prospect:
    # record_sms_consent reads only the email and the sms_consent field.
    return Prospect(email=row.email, fields=row.fields)
