"""Deals, their stage history, their contacts and the daily pipeline snapshots.

Writes are idempotent, so a re-import or a re-sync of the same data changes
nothing the second time:

* :func:`upsert_deals` inserts new deals and updates only those whose values
  differ (``updated_at`` moves only then). Each deal's current stage is also a
  stage change: a new deal with no recorded history entered its stage at
  ``created_at``; a deal whose stage differs from its last recorded change
  entered the new stage when it closed (``closed_at``) or else ``now``.
* :func:`add_stage_changes` inserts on conflict do nothing: a change is
  recorded once, whatever the number of syncs that report it.
* :func:`upsert_contacts` keeps one row per deal and person (email, else CRM id).
* :func:`write_snapshot` replaces the day's rows: a rerun of a date is the same.

:func:`add_close_date_changes` records close-date changes the same way.

Reads: :func:`close_date_history` (the recorded close-date changes merged with
what the snapshots show), :func:`open_deals` (and a page of them,
:func:`open_deals_page`), :func:`deal_contacts_for`, :func:`deals_as_of` (the
pipeline as it was known at a past time: what the forecast backtest replays),
:func:`snapshot`.

Everything works on lists of any length in chunks (executemany and ``IN``
lists under :data:`~touchflow.domain.batching.IN_LIMIT`), so 50,000 deals
load in one call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)

from touchflow.domain.batching import chunks
from touchflow.domain.deals import (
    CommitteeRole,
    Deal,
    DealContact,
    DealOutcome,
    ForecastCategory,
    StageChange,
)
from touchflow.domain.forecasting import CloseDateChange
from touchflow.domain.pipeline import DealHistory
from touchflow.store.filters import owner_is
from touchflow.store.prebuilt import Insert, per_dialect
from touchflow.store.schema import (
    deal_close_dates,
    deal_contacts,
    deal_stage_changes,
    deals,
    pipeline_snapshots,
)

__all__ = [
    "DealCounts",
    "SnapshotRow",
    "add_close_date_changes",
    "add_stage_changes",
    "all_deals",
    "close_date_history",
    "deal_contacts_for",
    "deals_as_of",
    "open_deals",
    "snapshot",
    "snapshot_dates",
    "stage_history",
    "upsert_contacts",
    "upsert_deals",
    "write_snapshot",
]

# The deal columns a write compares and sets (the key and updated_at aside).
_VALUES = (
    "name",
    "account_domain",
    "owner_email",
    "amount",
    "currency",
    "stage",
    "forecast_category",
    "created_at",
    "close_date",
    "closed_at",
    "outcome",
)

Key = tuple[str, str]


@dataclass
class DealCounts:
    """What one write did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    stage_changes: int = 0

    def add(self, other: DealCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stage_changes += other.stage_changes


@per_dialect
def _insert_changes(insert: Insert) -> Any:
    return insert(deal_stage_changes).on_conflict_do_nothing(
        index_elements=["source", "deal_id", "entered_at", "stage"]
    )


@per_dialect
def _upsert_contact(insert: Insert) -> Any:
    stmt = insert(deal_contacts)
    t, new = deal_contacts.c, stmt.excluded
    changed = [
        t[c].is_distinct_from(new[c]) for c in ("email", "crm_contact_id", "role", "inferred")
    ]
    # updated_at moves only when something did: the committee read model's mark.
    return stmt.on_conflict_do_update(
        index_elements=["source", "deal_id", "contact_key"],
        set_={
            "email": new.email,
            "crm_contact_id": new.crm_contact_id,
            "role": new.role,
            "inferred": new.inferred,
            "updated_at": new.updated_at,
        },
        where=or_(*changed),
    )


_UPDATE_DEAL = (
    update(deals)
    .where(deals.c.source == bindparam("k_source"), deals.c.deal_id == bindparam("k_deal_id"))
    .values({c: bindparam(c) for c in (*_VALUES, "updated_at")})
)


def _row(deal: Deal, category: ForecastCategory) -> dict[str, Any]:
    return {
        "name": deal.name,
        "account_domain": deal.account_domain,
        "owner_email": deal.owner_email,
        "amount": float(deal.amount),
        "currency": deal.currency.upper(),
        "stage": deal.stage,
        "forecast_category": category.value,
        "created_at": deal.created_at,
        "close_date": deal.close_date,
        "closed_at": deal.closed_at,
        "outcome": deal.outcome.value if deal.outcome else None,
    }


#: Above this many keys a read scans the source's rows once instead of ``IN`` lists.
_SCAN_ABOVE = 2000


def _rows_for_keys(conn: Connection, query: Any, table: Any, keys: Sequence[Key]) -> Iterator[Any]:
    """The rows of ``query`` (on ``table``) whose (source, deal_id) is in ``keys``.

    Few keys: ``source = s AND deal_id IN (...)`` in slices (an index range each).
    Many: one scan of the sources' rows, filtered here; an ``IN`` list of 900 on a
    table the planner has no statistics for yet (a bulk load in progress) is
    planned as a scan comparing every row with every item, 0.5 s a query at
    50,000 rows.
    """
    source_col, id_col = table.c.source, table.c.deal_id
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, deal_id in keys:
        by_source[source].append(deal_id)
    if len(keys) > _SCAN_ABOVE:
        wanted = set(keys)
        for row in conn.execute(query.where(source_col.in_(list(by_source)))):
            if (row.source, row.deal_id) in wanted:
                yield row
        return
    for source, ids in by_source.items():
        for part in chunks(ids):
            yield from conn.execute(query.where(source_col == source, id_col.in_(list(part))))


def _last_changes(conn: Connection, keys: Sequence[Key]) -> dict[Key, tuple[str, datetime]]:
    """Each deal's last recorded stage change (stage, entered_at)."""
    t = deal_stage_changes
    last: dict[Key, tuple[str, datetime]] = {}
    query = select(t.c.source, t.c.deal_id, t.c.stage, t.c.entered_at)
    for source, deal_id, stage, entered_at in _rows_for_keys(conn, query, t, keys):
        key = (source, deal_id)
        seen = last.get(key)
        if seen is None or (entered_at, stage) > (seen[1], seen[0]):
            last[key] = (stage, entered_at)
    return last


def upsert_deals(
    conn: Connection,
    items: Sequence[Deal],
    category: Callable[[Deal], ForecastCategory],
    now: datetime,
) -> DealCounts:
    """Insert or update ``items`` by (source, deal_id); record each one's current stage.

    ``category`` gives a deal's forecast category (``Pipeline.category_for``).
    Duplicates in ``items``: the last one wins. Stage history given for the same
    deals should be added (:func:`add_stage_changes`) before, so a new deal's
    current stage is not also dated at its creation.
    """
    counts = DealCounts()
    unique: dict[Key, Deal] = {}
    for deal in items:
        unique[(deal.source, deal.deal_id)] = deal
    keys = list(unique)
    existing: dict[Key, dict[str, Any]] = {}
    query = select(deals.c.source, deals.c.deal_id, *(deals.c[c] for c in _VALUES))
    for row in _rows_for_keys(conn, query, deals, keys):
        existing[(row.source, row.deal_id)] = dict(row._mapping)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, deal in unique.items():
        values = _row(deal, category(deal))
        old = existing.get(key)
        if old is None:
            inserts.append({"source": key[0], "deal_id": key[1], **values, "updated_at": now})
            counts.new += 1
        elif any(old[c] != values[c] for c in _VALUES):
            updates.append({"k_source": key[0], "k_deal_id": key[1], **values, "updated_at": now})
            counts.updated += 1
        else:
            counts.unchanged += 1
    for part in chunks(inserts, 1000):
        conn.execute(deals.insert(), list(part))
    for part in chunks(updates, 1000):
        conn.execute(_UPDATE_DEAL, list(part))
    # The current stage as a change, when the history does not end in it already.
    last = _last_changes(conn, keys)
    implied: dict[str, list[StageChange]] = defaultdict(list)
    for key, deal in unique.items():
        seen = last.get(key)
        if seen is None:
            implied[key[0]].append(StageChange(deal.deal_id, deal.stage, deal.created_at))
        elif seen[0] != deal.stage:
            when = deal.closed_at if deal.closed_at is not None else now
            implied[key[0]].append(StageChange(deal.deal_id, deal.stage, max(when, seen[1])))
    for source, changes in implied.items():
        counts.stage_changes += add_stage_changes(conn, source, changes)
    return counts


def add_stage_changes(conn: Connection, source: str, changes: Iterable[StageChange]) -> int:
    """Record stage changes of ``source``'s deals; one already recorded is skipped.

    Returns how many were new.
    """
    rows = [
        {"source": source, "deal_id": c.deal_id, "stage": c.stage, "entered_at": c.entered_at}
        for c in changes
    ]
    if not rows:
        return 0
    stmt = _insert_changes(conn).returning(deal_stage_changes.c.id)
    added = 0
    for part in chunks(rows, 1000):
        added += len(conn.execute(stmt, list(part)).all())
    return added


@per_dialect
def _insert_close_dates(insert: Insert) -> Any:
    return insert(deal_close_dates).on_conflict_do_nothing(
        index_elements=["source", "deal_id", "changed_at", "close_date"]
    )


def add_close_date_changes(
    conn: Connection, source: str, changes: Iterable[CloseDateChange]
) -> int:
    """Record close-date changes of ``source``'s deals; one already recorded is skipped.

    Returns how many were new.
    """
    rows = [
        {"source": source, "deal_id": c.deal_id, "close_date": c.close_date,
         "changed_at": c.changed_at}
        for c in changes
    ]  # fmt: skip
    if not rows:
        return 0
    stmt = _insert_close_dates(conn).returning(deal_close_dates.c.id)
    added = 0
    for part in chunks(rows, 1000):
        added += len(conn.execute(stmt, list(part)).all())
    return added


def close_date_history(
    conn: Connection, *, until: datetime | None = None
) -> dict[Key, list[CloseDateChange]]:
    """Each deal's close-date changes, oldest first: the recorded ones and the snapshots'.

    A snapshot dated D counts as known at the end of D (the next midnight, UTC):
    it was taken some time that day. A snapshot's close date becomes a change
    only where it differs from the close date known just before it, so daily
    snapshots of an unchanged deal add nothing. A deal with neither has no entry
    (its record's close date is the only one known). With ``until``, nothing
    known after it.
    """
    t = deal_close_dates
    query = select(t.c.source, t.c.deal_id, t.c.close_date, t.c.changed_at)
    if until is not None:
        query = query.where(t.c.changed_at <= until)
    merged: dict[Key, list[tuple[datetime, date]]] = defaultdict(list)
    for r in conn.execute(query):
        merged[(r.source, r.deal_id)].append((_aware(r.changed_at), r.close_date))
    s = pipeline_snapshots
    snaps = select(s.c.source, s.c.deal_id, s.c.close_date, s.c.snapshot_date).where(
        s.c.close_date.is_not(None)
    )
    if until is not None:
        snaps = snaps.where(s.c.snapshot_date <= _aware(until).date())
    for r in conn.execute(snaps):
        known = datetime.combine(r.snapshot_date + _DAY, time(), UTC)
        if until is not None and known > _aware(until):
            continue
        merged[(r.source, r.deal_id)].append((known, r.close_date))
    out: dict[Key, list[CloseDateChange]] = {}
    for key, items in merged.items():
        items.sort()
        kept: list[CloseDateChange] = []
        for at, close_date in items:
            if kept and kept[-1].close_date == close_date:
                continue
            kept.append(CloseDateChange(key[1], close_date, at))
        out[key] = kept
    return out


_DAY = timedelta(days=1)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def upsert_contacts(conn: Connection, source: str, contacts: Iterable[DealContact]) -> int:
    """Add or update ``source``'s deal contacts (one per deal and email, else CRM id).

    A contact with neither an email nor a CRM id is skipped. Returns rows written.
    """
    rows = []
    now = datetime.now(UTC)
    for c in contacts:
        email = c.email.strip().lower() if c.email else None
        key = email or (f"crm:{c.crm_contact_id}" if c.crm_contact_id else None)
        if key is None:
            continue
        rows.append({
            "source": source, "deal_id": c.deal_id, "contact_key": key, "email": email,
            "crm_contact_id": c.crm_contact_id, "role": c.role.value, "inferred": c.inferred,
            "updated_at": now,
        })  # fmt: skip
    stmt = _upsert_contact(conn)
    for part in chunks(rows, 1000):
        conn.execute(stmt, list(part))
    return len(rows)


def _deal(row: Any) -> Deal:
    return Deal(
        deal_id=row.deal_id,
        source=row.source,
        account_domain=row.account_domain,
        owner_email=row.owner_email,
        amount=row.amount,
        currency=row.currency,
        stage=row.stage,
        created_at=row.created_at,
        close_date=row.close_date,
        closed_at=row.closed_at,
        outcome=DealOutcome(row.outcome) if row.outcome else None,
        name=row.name,
    )


def open_deals(conn: Connection, *, account_domain: str | None = None) -> list[Deal]:
    """Deals without an outcome (optionally of one account), by source and id."""
    query = select(deals).where(deals.c.outcome.is_(None))
    if account_domain is not None:
        query = query.where(deals.c.account_domain == account_domain)
    return [_deal(r) for r in conn.execute(query.order_by(deals.c.source, deals.c.deal_id))]


def open_deals_page(
    conn: Connection, *, owners: str | frozenset[str] | None, limit: int, offset: int
) -> tuple[list[Deal], int]:
    """One page of the open deals of ``owners`` (an email, a set, None: everyone's) and how
    many there are in all. Biggest first: amount descending, then source and id, a total
    order, so consecutive pages neither repeat nor skip a deal."""
    cond: list[ColumnElement[bool]] = [deals.c.outcome.is_(None)]
    if owners is not None:
        if not owners:
            return [], 0
        cond.append(owner_is(deals.c.owner_email, owners))
    total = int(conn.execute(select(func.count()).select_from(deals).where(*cond)).scalar_one())
    query = (
        select(deals)
        .where(*cond)
        .order_by(deals.c.amount.desc(), deals.c.source, deals.c.deal_id)
        .limit(limit)
        .offset(offset)
    )
    return [_deal(r) for r in conn.execute(query)], total


def all_deals(conn: Connection) -> list[Deal]:
    """Every deal as last known, by source and id."""
    return [_deal(r) for r in conn.execute(select(deals).order_by(deals.c.source, deals.c.deal_id))]


def stage_history(
    conn: Connection, keys: Sequence[Key] | None = None, *, until: datetime | None = None
) -> dict[Key, list[StageChange]]:
    """Recorded stage changes per deal, oldest first (only those at or before ``until``)."""
    t = deal_stage_changes
    base = select(t.c.source, t.c.deal_id, t.c.stage, t.c.entered_at)
    if until is not None:
        base = base.where(t.c.entered_at <= until)
    out: dict[Key, list[StageChange]] = defaultdict(list)
    rows: Iterable[Any] = (
        conn.execute(base).all() if keys is None else _rows_for_keys(conn, base, t, keys)
    )
    for source, deal_id, stage, entered_at in rows:
        out[(source, deal_id)].append(StageChange(deal_id, stage, entered_at))
    for changes in out.values():
        changes.sort(key=lambda c: (c.entered_at, c.stage))
    return dict(out)


def deal_contacts_for(conn: Connection, keys: Sequence[Key]) -> dict[Key, list[DealContact]]:
    """The contacts of each deal in ``keys`` (by email, then CRM id)."""
    t = deal_contacts
    out: dict[Key, list[DealContact]] = defaultdict(list)
    for r in _rows_for_keys(conn, select(t).order_by(t.c.contact_key), t, keys):
        out[(r.source, r.deal_id)].append(
            DealContact(r.deal_id, r.email, CommitteeRole(r.role), r.crm_contact_id, r.inferred)
        )
    for found in out.values():
        found.sort(key=lambda c: c.email or f"crm:{c.crm_contact_id}")
    return dict(out)


def deals_as_of(conn: Connection, as_of: datetime) -> list[DealHistory]:
    """Every deal as it was known at ``as_of``, with its stage changes up to then.

    Nothing after ``as_of`` leaks in: a deal created later is absent; its stage
    is that of its last change at or before ``as_of`` (a deal with no change
    by then is in the stage of its first recorded change: the stage it was
    created in); its outcome and ``closed_at`` only when it closed at or before
    ``as_of``; its amount, currency and close date those of the latest snapshot
    on or before ``as_of``'s date when there is one (else the current values:
    a CRM keeps no amount history, the snapshots do). Ordered by source and id.
    """
    rows = conn.execute(
        select(deals).where(deals.c.created_at <= as_of).order_by(deals.c.source, deals.c.deal_id)
    ).all()
    if not rows:
        return []
    t = deal_stage_changes
    changes: dict[Key, list[StageChange]] = defaultdict(list)
    for r in conn.execute(
        select(t.c.source, t.c.deal_id, t.c.stage, t.c.entered_at)
        .where(t.c.entered_at <= as_of)
        .order_by(t.c.entered_at, t.c.stage)
    ):
        changes[(r.source, r.deal_id)].append(StageChange(r.deal_id, r.stage, r.entered_at))
    # Deals created by then whose first recorded change is later: the stage of that change.
    first: dict[Key, str] = {}
    if any((r.source, r.deal_id) not in changes for r in rows):
        for r in conn.execute(
            select(t.c.source, t.c.deal_id, t.c.stage, t.c.entered_at)
            .where(t.c.entered_at > as_of)
            .order_by(t.c.entered_at.desc(), t.c.stage.desc())
        ):
            first[(r.source, r.deal_id)] = r.stage
    snaps = _latest_snapshots(conn, as_of)
    out = []
    for row in rows:
        key = (row.source, row.deal_id)
        history = tuple(changes.get(key, ()))
        closed = row.closed_at is not None and row.closed_at <= as_of
        snap = snaps.get(key)
        if history:
            stage = history[-1].stage
        elif snap is not None:
            stage = snap["stage"]
        elif key in first:
            stage = first[key]
        else:
            stage = row.stage
        deal = Deal(
            deal_id=row.deal_id,
            source=row.source,
            account_domain=row.account_domain,
            owner_email=row.owner_email,
            amount=snap["amount"] if snap else row.amount,
            currency=snap["currency"] if snap else row.currency,
            stage=stage,
            created_at=row.created_at,
            close_date=snap["close_date"] if snap else row.close_date,
            closed_at=row.closed_at if closed else None,
            outcome=DealOutcome(row.outcome) if closed and row.outcome else None,
            name=row.name,
        )
        out.append(DealHistory(deal, history))
    return out


def _latest_snapshots(conn: Connection, as_of: datetime) -> dict[Key, dict[str, Any]]:
    """Each deal's row in the latest snapshot dated on or before ``as_of``'s date."""
    s = pipeline_snapshots
    last = (
        select(s.c.source, s.c.deal_id, func.max(s.c.snapshot_date).label("day"))
        .where(s.c.snapshot_date <= as_of.date())
        .group_by(s.c.source, s.c.deal_id)
        .subquery()
    )
    query = select(s).join(
        last,
        (s.c.source == last.c.source)
        & (s.c.deal_id == last.c.deal_id)
        & (s.c.snapshot_date == last.c.day),
    )
    return {(m["source"], m["deal_id"]): dict(m) for m in conn.execute(query).mappings()}


# -- snapshots ----------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRow:
    """One open deal on a snapshot date."""

    snapshot_date: date
    source: str
    deal_id: str
    stage: str
    forecast_category: str
    amount: float
    currency: str
    close_date: date | None
    owner_email: str | None
    account_domain: str | None


def write_snapshot(conn: Connection, day: date) -> int:
    """Record every open deal as it stands now under ``day`` (replacing that day's rows).

    Returns the number of deals recorded. Idempotent per date.
    """
    conn.execute(delete(pipeline_snapshots).where(pipeline_snapshots.c.snapshot_date == day))
    cols = ("source", "deal_id", "stage", "forecast_category", "amount", "currency",
            "close_date", "owner_email", "account_domain")  # fmt: skip
    rows = [
        {"snapshot_date": day, **{c: r[c] for c in cols}}
        for r in conn.execute(
            select(*(deals.c[c] for c in cols)).where(deals.c.outcome.is_(None))
        ).mappings()
    ]
    for part in chunks(rows, 1000):
        conn.execute(pipeline_snapshots.insert(), list(part))
    return len(rows)


def snapshot(conn: Connection, day: date) -> list[SnapshotRow]:
    """The snapshot of ``day`` (empty when none was taken), by source and id."""
    s = pipeline_snapshots
    rows = conn.execute(
        select(s).where(s.c.snapshot_date == day).order_by(s.c.source, s.c.deal_id)
    ).mappings()
    return [SnapshotRow(**dict(r)) for r in rows]


def snapshot_dates(conn: Connection) -> list[date]:
    """Every date a snapshot was taken, oldest first."""
    s = pipeline_snapshots
    return list(conn.scalars(select(s.c.snapshot_date).distinct().order_by(s.c.snapshot_date)))


def open_deals_at(
    conn: Connection, *, domains: Sequence[str] = (), keys: Sequence[Key] = ()
) -> list[Deal]:
    """Open deals at these account domains or with these keys (no duplicates)."""
    found: dict[Key, Deal] = {}
    for part in chunks(sorted(set(domains)), 1000):
        q = select(deals).where(deals.c.outcome.is_(None), deals.c.account_domain.in_(list(part)))
        for r in conn.execute(q):
            found[(r.source, r.deal_id)] = _deal(r)
    open_only = select(deals).where(deals.c.outcome.is_(None))
    for r in _rows_for_keys(conn, open_only, deals, list(set(keys))):
        found[(r.source, r.deal_id)] = _deal(r)
    return list(found.values())
