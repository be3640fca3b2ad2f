"""The reporting read model: counters kept up to date from high-water marks.

Sources, each folded in by row id above its mark (``rollup_marks``):
``enrollments`` (funnel rows), ``touches`` (sent, failed, skipped), ``events``
(delivered, opened, clicked, replied, bounced, spam reports, opt-outs,
meetings, task completions), ``tasks`` (created) and ``score_history`` (the
SQL stage of the funnel).

Guarantees (docs/reporting.md):

* **One transaction.** A round reads rows above each mark, adds their counts,
  and moves the marks, all committed together: a crash loses the whole round
  and the next refresh redoes it; nothing is counted twice. Concurrent
  refreshes serialize (an advisory lock on PostgreSQL, the write lock on
  SQLite).
* **Nothing skipped.** An id below the highest one seen but not visible yet (a
  transaction still open, or a sequence value an ``ON CONFLICT DO NOTHING``
  burnt) is kept as a ``gap`` in ``rollup_pending`` and looked at again by
  every refresh for an hour (``GAP_TTL``), longer than any transaction runs.
  A touch still ``sending`` or ``unknown`` is kept as ``unsettled`` until it
  settles (an unknown touch a provider event reconciles counts as sent then).
* **Which day.** A touch counts on the UTC day it was executed (the tick's
  ``now``). An outcome event about a touch (delivered, opened, clicked,
  replied, bounced, spam, opted out, meeting) counts on the day of that
  touch, so a day's reply rate is the rate of that day's sends, however late
  the reply comes (and A/B rates compare like with like). An event with no
  touch counts on the day it occurred; tasks count on the day they were
  created, task completions on the day they were done.
* **Once per touch.** Outcome events count once per touch and metric (two
  replies to one email are one reply; ``rollup_seen``); events with no touch
  count each.

:func:`ledger_counts` computes the same counters by a straightforward GROUP BY
over the ledger: the tests hold the two equal, the benchmark compares them.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
    update,
)

from touchflow.store.db import begin_write
from touchflow.store.filters import owner_is
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import (
    deal_stage_changes,
    deals,
    enrollments,
    events,
    prospects,
    rollup_cadence,
    rollup_counts,
    rollup_delivery,
    rollup_funnel,
    rollup_mailbox,
    rollup_marks,
    rollup_pending,
    rollup_seen,
    score_history,
    tasks,
    touches,
)

__all__ = [
    "DIMENSIONS",
    "EVENT_METRICS",
    "GAP_TTL",
    "SOURCES",
    "RefreshReport",
    "bump_generation",
    "generation",
    "ledger_counts",
    "ledger_delivery",
    "refresh",
    "rollup_delivery_counts",
    "rollup_delivery_problems",
    "rollup_mailbox_counts",
    "rollup_totals",
]

#: An owner filter: one email, a set of them (a viewer's team), or None for everyone.
Owners = str | Collection[str] | None
DIMENSIONS = ("cadence_id", "step_id", "variant", "channel", "owner_email", "mailbox")
# rollup_cadence keeps these (rollup_counts summed over the others): read when they suffice.
_NARROW = ("cadence_id", "step_id", "variant")
SOURCES = (
    "enrollments",
    "touches",
    "events",
    "tasks",
    "score_history",
    "deals",
    "deal_stage_changes",
)
#: Stored event type -> the counter it feeds (vendor-free names, see domain/events.py).
EVENT_METRICS: Mapping[str, str] = {
    "delivered": "delivered",
    "sms_delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "replied": "replied",
    "sms_reply": "replied",
    "bounce": "bounced",
    "spamreport": "spam_reported",
    "unsubscribe": "opted_out",
    "group_unsubscribe": "opted_out",
    "sms_stop": "opted_out",
    "meeting_booked": "meetings",
}
TOUCH_METRICS: Mapping[str, str] = {"sent": "sent", "failed": "failed", "skipped": "skipped"}
UNSETTLED = ("sending", "unknown")
DELIVERY_METRICS = frozenset({"sent", "delivered", "bounced", "spam_reported", "opted_out"})
_FUNNEL_COLUMN = {
    "sent": "contacted_at",
    "opened": "engaged_at",
    "clicked": "engaged_at",
    "replied": "replied_at",
    "meetings": "meeting_at",
}
GAP_TTL = timedelta(hours=1)
CHUNK = 20_000
_LOCK_SPACE, _LOCK_KEY = 0x7466, 0x726F  # "tf", "ro"
_SOURCE_TABLES = {
    "enrollments": enrollments,
    "touches": touches,
    "events": events,
    "tasks": tasks,
    "score_history": score_history,
    "deals": deals,
    "deal_stage_changes": deal_stage_changes,
}

Key = tuple[Any, ...]  # (day, *DIMENSIONS, metric)


@dataclass
class RefreshReport:
    """What one refresh folded in."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    rounds: int = 0
    pending: int = 0  # gaps and unsettled touches left for the next refresh
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.rows, "rounds": self.rounds, "pending": self.pending}


@dataclass
class _Batch:
    counts: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    delivery: dict[tuple[date, str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    # enrollment id -> funnel column -> earliest time
    funnel: dict[int, dict[str, datetime]] = field(default_factory=lambda: defaultdict(dict))
    # prospect id -> funnel column -> earliest time (events without an enrollment, SQL)
    funnel_prospect: dict[int, dict[str, datetime]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    # Account domains with a new deal or stage change: their opportunity/won to recompute.
    deal_domains: set[str] = field(default_factory=set)

    def first(self, into: dict[str, datetime], col: str, at: datetime) -> None:
        if col not in into or at < into[col]:
            into[col] = at


def refresh(engine: Engine, wall: datetime | None = None) -> RefreshReport:
    """Bring the rollups up to date; rerunning it (or two at once) counts nothing twice."""
    started = time.perf_counter()
    report = RefreshReport()
    from touchflow.store import rollup_backfill  # it builds on this module's queries

    if rollup_backfill.wanted(engine):
        rollup_backfill.backfill(engine, wall or datetime.now(UTC), report)
    while True:
        with begin_write(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _LOCK_SPACE, "b": _LOCK_KEY}
                )
            more = _round(conn, wall or datetime.now(UTC), report)
        report.rounds += 1
        if not more:
            break
    report.seconds = time.perf_counter() - started
    return report


def _round(conn: Connection, wall: datetime, report: RefreshReport) -> bool:
    """One transaction: up to CHUNK new rows per source, and the pending ones; True if more."""
    marks: dict[str, int] = dict(
        conn.execute(select(rollup_marks.c.source, rollup_marks.c.mark)).all()
    )
    pending: dict[str, dict[int, tuple[str, datetime]]] = defaultdict(dict)
    for row in conn.execute(select(rollup_pending)):
        pending[row.source][row.row_id] = (row.kind, row.seen_at)
    batch = _Batch()
    before = dict(report.rows)
    more = False
    new_pending: list[dict[str, Any]] = []
    done_pending: list[dict[str, Any]] = []
    new_marks: dict[str, int] = {}
    for src in SOURCES:
        table = _SOURCE_TABLES[src]
        mark = marks.get(src, 0)
        ids: list[int] = list(
            conn.execute(
                select(table.c.id).where(table.c.id > mark).order_by(table.c.id).limit(CHUNK)
            ).scalars()
        )
        more = more or len(ids) == CHUNK
        old = pending.get(src, {})
        todo = ids + sorted(old)
        if ids:
            seen = set(ids)
            for gap in range(mark + 1, ids[-1]):
                if gap not in seen:
                    new_pending.append(
                        {"source": src, "row_id": gap, "kind": "gap", "seen_at": wall}
                    )
            new_marks[src] = ids[-1]
        if not todo:
            continue
        folded, unsettled = _FOLD[src](conn, batch, todo)
        report.rows[src] += len(folded)
        for rid in unsettled:
            if rid not in old:
                new_pending.append(
                    {"source": src, "row_id": rid, "kind": "unsettled", "seen_at": wall}
                )
            elif old[rid][0] == "gap":  # visible now, but not settled yet
                done_pending.append({"s": src, "r": rid})
                new_pending.append(
                    {"source": src, "row_id": rid, "kind": "unsettled", "seen_at": wall}
                )
        for rid, (kind, seen_at) in old.items():
            if rid in folded or (kind == "gap" and wall - seen_at > GAP_TTL):
                done_pending.append({"s": src, "r": rid})
    _write(conn, batch)
    if done_pending:
        conn.execute(
            delete(rollup_pending).where(
                rollup_pending.c.source == bindparam("s"), rollup_pending.c.row_id == bindparam("r")
            ),
            done_pending,
        )
    if new_pending:
        conn.execute(dialect_insert(conn, rollup_pending).on_conflict_do_nothing(), new_pending)
    for src, mark in new_marks.items():
        stmt = dialect_insert(conn, rollup_marks).values(source=src, mark=mark, updated_at=wall)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["source"], set_={"mark": mark, "updated_at": wall}
            )
        )
    if new_marks or any(report.rows[src] != before[src] for src in SOURCES):
        bump_generation(conn, wall)
    report.pending = conn.execute(select(func.count()).select_from(rollup_pending)).scalar_one()
    return more


#: ``rollup_marks``' row that changes with every refresh round that changed the rollups.
GENERATION = "generation"


def bump_generation(conn: Connection, wall: datetime) -> None:
    """A new random generation: whatever was read from the rollups before is older.

    Random, not a counter: emptied and rebuilt rollups (a reset, a test's fresh
    schema) never hand out a generation seen before.
    """
    value = secrets.randbelow(2**31 - 2) + 1
    stmt = dialect_insert(conn, rollup_marks).values(source=GENERATION, mark=value, updated_at=wall)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["source"], set_={"mark": value, "updated_at": wall}
        )
    )


def generation(conn: Connection) -> int | None:
    """The rollups' generation (None before the first refresh): a cache key for what is
    read from them, since a refresh changes them only together with it."""
    got = conn.execute(
        select(rollup_marks.c.mark).where(rollup_marks.c.source == GENERATION)
    ).scalar_one_or_none()
    return None if got is None else int(got)


# -- folding each source ---------------------------------------------------------------


def _chunks(ids: Sequence[int], size: int = 5000) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


def _fold_enrollments(conn: Connection, b: _Batch, ids: list[int]) -> tuple[set[int], set[int]]:
    folded: set[int] = set()
    for part in _chunks(ids):
        rows = conn.execute(
            select(
                enrollments.c.id,
                enrollments.c.prospect_id,
                enrollments.c.cadence_id,
                enrollments.c.owner_email,
                enrollments.c.enrolled_at,
            ).where(_id_in(conn, enrollments.c.id, part))
        ).all()
        if not rows:
            continue
        first_sql: dict[int, datetime] = dict(
            conn.execute(
                select(score_history.c.prospect_id, func.min(score_history.c.scored_at))
                .where(
                    score_history.c.lifecycle == "sql",
                    score_history.c.prospect_id.in_({r.prospect_id for r in rows}),
                )
                .group_by(score_history.c.prospect_id)
            ).all()
        )
        values = []
        for r in rows:
            sql = first_sql.get(r.prospect_id)
            values.append(
                {
                    "enrollment_id": r.id,
                    "prospect_id": r.prospect_id,
                    "cadence_id": r.cadence_id,
                    "owner_email": r.owner_email,
                    "enrolled_at": r.enrolled_at,
                    "sql_at": None if sql is None else max(sql, r.enrolled_at),
                }
            )
            folded.add(r.id)
        conn.execute(dialect_insert(conn, rollup_funnel).on_conflict_do_nothing(), values)
    return folded, set()


def _fold_touches(conn: Connection, b: _Batch, ids: list[int]) -> tuple[set[int], set[int]]:
    folded: set[int] = set()
    unsettled: set[int] = set()
    for part in _chunks(ids):
        rows = conn.execute(
            select(
                touches.c.id,
                touches.c.enrollment_id,
                touches.c.step_id,
                touches.c.channel,
                touches.c.variant,
                touches.c.status,
                touches.c.executed_at,
                enrollments.c.cadence_id,
                enrollments.c.owner_email,
                enrollments.c.sender_email,
                prospects.c.email,
            )
            .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
            .join(prospects, prospects.c.id == enrollments.c.prospect_id)
            .where(_id_in(conn, touches.c.id, part))
        ).all()
        for r in rows:
            if r.status in UNSETTLED:
                unsettled.add(r.id)
                continue
            folded.add(r.id)
            metric = TOUCH_METRICS.get(r.status)
            if metric is None:
                continue
            day = r.executed_at.date()
            dims = (
                r.cadence_id,
                r.step_id,
                r.variant or "",
                r.channel,
                r.owner_email,
                r.sender_email,
            )
            b.counts[(day, *dims, metric)] += 1
            if r.channel == "email" and metric in DELIVERY_METRICS:
                b.delivery[(day, r.sender_email, _domain(r.email), metric)] += 1
            if metric == "sent":
                b.first(b.funnel[r.enrollment_id], "contacted_at", r.executed_at)
    return folded, unsettled


def _fold_events(conn: Connection, b: _Batch, ids: list[int]) -> tuple[set[int], set[int]]:
    folded: set[int] = set()
    enr = enrollments.alias("enr")
    for part in _chunks(ids):
        rows = conn.execute(
            select(
                events.c.id,
                events.c.type,
                events.c.source,
                case((events.c.source == "task", events.c.payload["outcome"].as_string())).label(
                    "outcome"
                ),
                events.c.occurred_at,
                events.c.prospect_id,
                events.c.touch_key,
                touches.c.id.label("touch_id"),
                touches.c.step_id,
                touches.c.channel,
                touches.c.variant,
                touches.c.executed_at,
                enr.c.id.label("enrollment_id"),
                enr.c.cadence_id,
                enr.c.owner_email,
                enr.c.sender_email,
                prospects.c.email,
            )
            .select_from(events)
            .outerjoin(touches, touches.c.key == events.c.touch_key)
            .outerjoin(
                enr, enr.c.id == func.coalesce(touches.c.enrollment_id, events.c.enrollment_id)
            )
            .outerjoin(prospects, prospects.c.id == enr.c.prospect_id)
            .where(_id_in(conn, events.c.id, part))
            .order_by(events.c.id)
        ).all()
        counted: list[tuple[Any, str]] = []
        units: dict[tuple[str, str], Any] = {}
        for r in rows:
            folded.add(r.id)
            metric = _event_metric(r.type, r.source, r.outcome)
            if metric is None:
                continue
            if metric.startswith("tasks_"):
                counted.append((r, metric))
                continue
            unit = r.touch_key if r.touch_id is not None else f"e{r.id}"
            units.setdefault((unit, metric), r)
            # The funnel takes every event's time (the earliest wins), counted or not.
            col = _FUNNEL_COLUMN.get(metric)
            if col is not None:
                if r.enrollment_id is not None:
                    b.first(b.funnel[r.enrollment_id], col, r.occurred_at)
                elif r.prospect_id is not None:
                    b.first(b.funnel_prospect[r.prospect_id], col, r.occurred_at)
        if units:
            new = _first_seen(conn, list(units))
            counted.extend((r, m) for (u, m), r in units.items() if (u, m) in new)
        for r, metric in counted:
            task_metric = metric.startswith("tasks_")
            day = (
                r.executed_at if r.touch_id is not None and not task_metric else r.occurred_at
            ).date()
            dims = (
                r.cadence_id or "",
                r.step_id or "",
                r.variant or "",
                r.channel or "",
                r.owner_email or "",
                r.sender_email or "",
            )
            b.counts[(day, *dims, metric)] += 1
            if r.channel == "email" and metric in DELIVERY_METRICS:
                b.delivery[(day, r.sender_email or "", _domain(r.email), metric)] += 1
    return folded, set()


def _first_seen(conn: Connection, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (unit, metric) pairs not counted before; recorded as counted now.

    Refreshes are serialized (see :func:`refresh`), so a SELECT then a plain
    INSERT is exact; the driver's executemany keeps it cheap per event.
    """
    seen: set[tuple[str, str]] = set()
    units = sorted({u for u, _ in pairs})
    for i in range(0, len(units), 2000):
        part = units[i : i + 2000]
        q = select(rollup_seen.c.unit, rollup_seen.c.metric).where(
            _id_in(conn, rollup_seen.c.unit, part)
        )
        seen.update((str(u), str(m)) for u, m in conn.execute(q))
    new = [p for p in pairs if p not in seen]
    if new and conn.dialect.name == "postgresql":
        # One statement, not one per row: a pipeline of 20,000 INSERTs costs seconds.
        conn.exec_driver_sql(
            "INSERT INTO rollup_seen (unit, metric) SELECT * FROM unnest(%s::text[], %s::text[])",
            ([u for u, _ in new], [m for _, m in new]),
        )
    elif new:
        conn.exec_driver_sql("INSERT INTO rollup_seen (unit, metric) VALUES (?, ?)", new)
    return set(new)


def _fold_tasks(conn: Connection, b: _Batch, ids: list[int]) -> tuple[set[int], set[int]]:
    folded: set[int] = set()
    for part in _chunks(ids):
        rows = conn.execute(
            select(
                tasks.c.id,
                tasks.c.step_id,
                tasks.c.channel,
                tasks.c.created_at,
                touches.c.variant,
                enrollments.c.cadence_id,
                enrollments.c.owner_email,
                enrollments.c.sender_email,
            )
            .select_from(tasks)
            .join(enrollments, enrollments.c.id == tasks.c.enrollment_id)
            .outerjoin(touches, touches.c.key == tasks.c.touch_key)
            .where(_id_in(conn, tasks.c.id, part))
        ).all()
        for r in rows:
            folded.add(r.id)
            dims = (
                r.cadence_id,
                r.step_id,
                r.variant or "",
                r.channel,
                r.owner_email,
                r.sender_email,
            )
            b.counts[(r.created_at.date(), *dims, "tasks_created")] += 1
    return folded, set()


def _fold_scores(conn: Connection, b: _Batch, ids: list[int]) -> tuple[set[int], set[int]]:
    folded: set[int] = set()
    for part in _chunks(ids):
        rows = conn.execute(
            select(
                score_history.c.id,
                score_history.c.prospect_id,
                score_history.c.lifecycle,
                score_history.c.scored_at,
            ).where(_id_in(conn, score_history.c.id, part))
        ).all()
        for r in rows:
            folded.add(r.id)
            if r.lifecycle == "sql":
                b.first(b.funnel_prospect[r.prospect_id], "sql_at", r.scored_at)
    return folded, set()


def _fold_deals(conn: Connection, b: _Batch, ids: list[int]) -> tuple[set[int], set[int]]:
    folded: set[int] = set()
    for part in _chunks(ids):
        for r in conn.execute(
            select(deals.c.id, deals.c.account_domain).where(_id_in(conn, deals.c.id, part))
        ):
            folded.add(r.id)
            if r.account_domain:
                b.deal_domains.add(r.account_domain)
    return folded, set()


def _fold_deal_changes(conn: Connection, b: _Batch, ids: list[int]) -> tuple[set[int], set[int]]:
    folded: set[int] = set()
    c = deal_stage_changes.c
    for part in _chunks(ids):
        for r in conn.execute(
            select(c.id, deals.c.account_domain)
            .select_from(deal_stage_changes)
            .outerjoin(deals, and_(deals.c.source == c.source, deals.c.deal_id == c.deal_id))
            .where(_id_in(conn, c.id, part))
        ):
            folded.add(r.id)  # a change before its deal: the deal's insert is folded later
            if r.account_domain:
                b.deal_domains.add(r.account_domain)
    return folded, set()


_FOLD = {
    "enrollments": _fold_enrollments,
    "touches": _fold_touches,
    "events": _fold_events,
    "tasks": _fold_tasks,
    "score_history": _fold_scores,
    "deals": _fold_deals,
    "deal_stage_changes": _fold_deal_changes,
}


def _event_metric(type_: str, source: str, outcome: str | None) -> str | None:
    if source == "task" and type_ in ("completed", "skipped"):
        return f"tasks_done:{outcome or type_}"
    return EVENT_METRICS.get(type_)


def _domain(email: str | None) -> str:
    return email.rsplit("@", 1)[-1].lower() if email and "@" in email else ""


def _write(conn: Connection, b: _Batch) -> None:
    keys = ["day", *DIMENSIONS, "metric"]
    _add_counts(conn, "rollup_counts", keys, [(*k, n) for k, n in b.counts.items()])
    narrow: dict[tuple[Any, ...], int] = defaultdict(int)
    for (day, cad, step, variant, _, _, _, metric), n in b.counts.items():
        narrow[(day, cad, step, variant, metric)] += n
    _add_counts(
        conn,
        "rollup_cadence",
        ["day", *_NARROW, "metric"],
        [(*k, n) for k, n in narrow.items()],
    )
    _add_counts(
        conn,
        "rollup_delivery",
        ["day", "mailbox", "domain", "metric"],
        [(*k, n) for k, n in b.delivery.items()],
    )
    per_mailbox: dict[tuple[Any, ...], int] = defaultdict(int)
    for (day, mailbox, _, metric), n in b.delivery.items():
        per_mailbox[(day, mailbox, metric)] += n
    _add_counts(
        conn,
        "rollup_mailbox",
        ["day", "mailbox", "metric"],
        [(*k, n) for k, n in per_mailbox.items()],
    )
    _write_funnel(conn, b)


def _add_counts(conn: Connection, table: str, keys: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Add ``n`` (each row's last value) to the counters keyed by ``keys``; create missing ones.

    PostgreSQL: one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT`` (an
    executemany of 30,000 upserts costs seconds there); SQLite: the driver's
    executemany, which runs in-process.
    """
    if not rows:
        return
    cols = ", ".join([*keys, "n"])
    update_n = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET n = {table}.n + excluded.n"
    if conn.dialect.name == "postgresql":
        types = ["date", *(["text"] * (len(keys) - 1)), "int"]
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({cols}) SELECT * FROM unnest({arrays}) {update_n}",
            tuple(list(col) for col in zip(*rows, strict=True)),
        )
    else:
        marks = ", ".join("?" for _ in range(len(keys) + 1))
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({cols}) VALUES ({marks}) {update_n}",
            [(r[0].isoformat(), *r[1:]) for r in rows],
        )


def _id_in(conn: Connection, col: Any, ids: Sequence[Any]) -> ColumnElement[bool]:
    """``col IN ids``; on PostgreSQL ``col = ANY(array)``: one parameter, not thousands."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import any_
        from sqlalchemy.dialects.postgresql import ARRAY

        return col == any_(cast(list(ids), ARRAY(col.type)))
    return col.in_(list(ids))


_TIMES = ("contacted_at", "engaged_at", "replied_at", "meeting_at", "sql_at")


def _write_funnel(conn: Connection, b: _Batch) -> None:
    """Lower the funnel's stage times to this batch's earliest; one UPDATE per changed row.
    Then the deal stages of the enrollments first contacted now, and of the accounts
    whose deals changed (:func:`_attribute_deals`)."""
    recheck = _lower_funnel(conn, b)
    if recheck or b.deal_domains:
        _attribute_deals(conn, recheck, b.deal_domains)


def _lower_funnel(conn: Connection, b: _Batch) -> set[int]:
    if not b.funnel and not b.funnel_prospect:
        return set()
    f = rollup_funnel.c
    cols = [f.enrollment_id, f.prospect_id, f.enrolled_at, *(f[c] for c in _TIMES)]
    current: dict[int, dict[str, Any]] = {}
    for ids, key in ((sorted(b.funnel), f.enrollment_id),
                     (sorted(b.funnel_prospect), f.prospect_id)):  # fmt: skip
        for i in range(0, len(ids), 2000):
            for found in conn.execute(select(*cols).where(_id_in(conn, key, ids[i : i + 2000]))):
                current[found.enrollment_id] = dict(found._mapping)
    changed: dict[int, dict[str, Any]] = {}

    def lower(row: dict[str, Any], col: str, at: datetime) -> None:
        if row[col] is None or at < row[col]:
            row[col] = at
            changed[row["enrollment_id"]] = row

    before = {eid: row["contacted_at"] for eid, row in current.items()}
    for eid, times in b.funnel.items():
        row = current.get(eid)
        if row is not None:
            for col, at in times.items():
                lower(row, col, at)
    contacted = {eid for eid, row in current.items() if row["contacted_at"] != before[eid]}
    by_prospect: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in current.values():
        by_prospect[row["prospect_id"]].append(row)
    for pid, times in b.funnel_prospect.items():
        for row in by_prospect.get(pid, []):
            for col, at in times.items():
                if col == "sql_at":  # SQL before the enrollment counts from the enrollment on
                    lower(row, col, max(at, row["enrolled_at"]))
                elif row["enrolled_at"] <= at:
                    lower(row, col, at)
    if changed and conn.dialect.name == "postgresql":
        # UTCDateTime stores naive UTC.
        def naive(v: datetime | None) -> datetime | None:
            return None if v is None else v.astimezone(UTC).replace(tzinfo=None)

        sets = ", ".join(f"{c} = v.{c}" for c in _TIMES)
        casts = ", ".join("%s::timestamp[]" for _ in _TIMES)
        conn.exec_driver_sql(
            f"UPDATE rollup_funnel AS f SET {sets} FROM unnest(%s::int[], {casts})"
            f" AS v(k, {', '.join(_TIMES)}) WHERE f.enrollment_id = v.k",
            (list(changed), *([naive(row[c]) for row in changed.values()] for c in _TIMES)),
        )
    elif changed:
        conn.execute(
            update(rollup_funnel)
            .where(f.enrollment_id == bindparam("k"))
            .values({c: bindparam(f"v_{c}", type_=f.enrolled_at.type) for c in _TIMES}),
            [{"k": eid, **{f"v_{c}": row[c] for c in _TIMES}} for eid, row in changed.items()],
        )
    return contacted


def deal_stage_times(
    contacted_at: datetime | None, found: Sequence[tuple[datetime, datetime | None]]
) -> tuple[datetime | None, datetime | None]:
    """An enrollment's ``opportunity_at`` and ``won_at`` from its account's deals.

    ``found``: (created_at, won_at or None) of each deal of the prospect's
    account domain. A deal counts when it was created at or after the
    enrollment's first contact (outreach came first); opportunity = the
    earliest such creation, won = the earliest such win. Never contacted: none.
    """
    if contacted_at is None:
        return None, None
    opp = won = None
    for created, won_at in found:
        if created < contacted_at:
            continue
        if opp is None or created < opp:
            opp = created
        if won_at is not None and (won is None or won_at < won):
            won = won_at
    return opp, won


def _aware(v: Any) -> Any:
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    if isinstance(v, datetime) and v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    return v


def _deals_by_domain(
    conn: Connection, domains: Iterable[str]
) -> dict[str, list[tuple[datetime, datetime | None]]]:
    d = deals.c
    won = case((d.outcome == "won", func.coalesce(d.closed_at, d.updated_at)))
    out: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    doms = sorted(set(domains))
    for i in range(0, len(doms), 2000):
        q = select(d.account_domain, d.created_at, won.label("won")).where(
            _id_in(conn, d.account_domain, doms[i : i + 2000])
        )
        for dom, created, won_at in conn.execute(q):
            out[str(dom)].append((_aware(created), _aware(won_at)))
    return out


def _attribute_deals(conn: Connection, enrollment_ids: set[int], domains: set[str]) -> None:
    """Recompute ``opportunity_at``/``won_at`` of these enrollments and of every enrollment
    of a prospect at these account domains (:func:`deal_stage_times`)."""
    f, p = rollup_funnel.c, prospects.c
    base = select(f.enrollment_id, f.contacted_at, f.opportunity_at, f.won_at, p.domain).join(
        prospects, p.id == f.prospect_id
    )
    rows: dict[int, Any] = {}
    ids = sorted(enrollment_ids)
    for i in range(0, len(ids), 2000):
        for r in conn.execute(base.where(_id_in(conn, f.enrollment_id, ids[i : i + 2000]))):
            rows[r.enrollment_id] = r
    doms = sorted(domains)
    for i in range(0, len(doms), 2000):
        for r in conn.execute(base.where(_id_in(conn, p.domain, doms[i : i + 2000]))):
            rows[r.enrollment_id] = r
    by_domain = _deals_by_domain(conn, {r.domain for r in rows.values() if r.domain})
    updates = []
    for eid, r in rows.items():
        opp, won = deal_stage_times(_aware(r.contacted_at), by_domain.get(r.domain or "", []))
        if (opp, won) != (_aware(r.opportunity_at), _aware(r.won_at)):
            updates.append({"k": eid, "v_opp": opp, "v_won": won})
    for i in range(0, len(updates), 5000):
        conn.execute(
            update(rollup_funnel)
            .where(f.enrollment_id == bindparam("k"))
            .values(
                opportunity_at=bindparam("v_opp", type_=f.enrolled_at.type),
                won_at=bindparam("v_won", type_=f.enrolled_at.type),
            ),
            updates[i : i + 5000],
        )


# -- reading -------------------------------------------------------------------------------


def rollup_totals(
    conn: Connection,
    by: Sequence[str],
    *,
    since: date | None = None,
    until: date | None = None,
    cadence: str | None = None,
    owner: Owners = None,
    metrics: Sequence[str] | None = None,
) -> dict[tuple[Any, ...], dict[str, int]]:
    """Counters summed over the days in [since, until], grouped ``by`` some of DIMENSIONS/day."""
    narrow = owner is None and set(by) <= {"day", *_NARROW}
    c = rollup_cadence.c if narrow else rollup_counts.c
    cols = [c[name] for name in by]
    q = select(*cols, c.metric, func.sum(c.n)).group_by(*cols, c.metric)
    q = _filtered(q, c, since, until, cadence, owner, metrics)
    return _pivot(conn.execute(q).all(), len(by))


def ledger_counts(
    conn: Connection,
    by: Sequence[str],
    *,
    since: date | None = None,
    until: date | None = None,
    cadence: str | None = None,
    owner: Owners = None,
    metrics: Sequence[str] | None = None,
) -> dict[tuple[Any, ...], dict[str, int]]:
    """The same counters as :func:`rollup_totals`, by a straightforward GROUP BY over the ledger."""
    sub = _ledger_rows(conn).subquery("ledger")
    cols = [sub.c[name] for name in by]
    q = select(*cols, sub.c.metric, func.count(func.distinct(sub.c.unit))).group_by(
        *cols, sub.c.metric
    )
    q = _filtered(q, sub.c, since, until, cadence, owner, metrics)
    return _pivot(conn.execute(q).all(), len(by))


def rollup_delivery_counts(
    conn: Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    domains: Collection[str] | None = None,
) -> dict[tuple[str, str], dict[str, int]]:
    """Email deliverability counters per (mailbox, recipient domain); only ``domains``' if given."""
    c = rollup_delivery.c
    q = select(c.mailbox, c.domain, c.metric, func.sum(c.n)).group_by(c.mailbox, c.domain, c.metric)
    if domains is not None:
        q = q.where(c.domain.in_(sorted(domains)))
    q = _filtered(q, c, since, until, None, None, None)
    return _pivot(conn.execute(q).all(), 2)


def rollup_mailbox_counts(
    conn: Connection, *, since: date | None = None, until: date | None = None
) -> dict[str, dict[str, int]]:
    """Email deliverability counters per sending mailbox, every recipient domain summed."""
    c = rollup_mailbox.c
    q = select(c.mailbox, c.metric, func.sum(c.n)).group_by(c.mailbox, c.metric)
    q = _filtered(q, c, since, until, None, None, None)
    return {mailbox: m for (mailbox,), m in _pivot(conn.execute(q).all(), 1).items()}


#: The deliverability counters that make a recipient domain worth a look.
PROBLEM_METRICS = ("bounced", "spam_reported")


def rollup_delivery_problems(
    conn: Connection, *, since: date | None = None, until: date | None = None
) -> dict[tuple[str, str], int]:
    """Bounces plus spam complaints per (mailbox, recipient domain) that had any.

    Reads only those counters' rows (``ix_rollup_delivery_metric_day``): about 1.5%
    of a window's sends, where summing every domain reads them all.
    """
    c = rollup_delivery.c
    q = (
        select(c.mailbox, c.domain, func.sum(c.n))
        .where(c.metric.in_(PROBLEM_METRICS))
        .group_by(c.mailbox, c.domain)
    )
    rows: Sequence[Any] = conn.execute(_filtered(q, c, since, until, None, None, None)).all()
    return {(mailbox, domain): int(n) for mailbox, domain, n in rows if n}


def ledger_delivery(
    conn: Connection, *, since: date | None = None, until: date | None = None
) -> dict[tuple[str, str], dict[str, int]]:
    """:func:`rollup_delivery_counts` by a GROUP BY over the ledger."""
    sub = _ledger_rows(conn).subquery("ledger")
    q = (
        select(sub.c.mailbox, sub.c.domain, sub.c.metric, func.count(func.distinct(sub.c.unit)))
        .where(sub.c.channel == "email", sub.c.metric.in_(sorted(DELIVERY_METRICS)))
        .group_by(sub.c.mailbox, sub.c.domain, sub.c.metric)
    )
    q = _filtered(q, sub.c, since, until, None, None, None)
    return _pivot(conn.execute(q).all(), 2)


def _filtered(
    q: Any,
    c: Any,
    since: date | None,
    until: date | None,
    cadence: str | None,
    owner: Owners,
    metrics: Sequence[str] | None,
) -> Any:
    if since is not None:
        q = q.where(c.day >= since)
    if until is not None:
        q = q.where(c.day <= until)
    if cadence is not None:
        q = q.where(c.cadence_id == cadence)
    if owner is not None:
        q = q.where(owner_is(c.owner_email, owner))
    if metrics is not None:
        q = q.where(c.metric.in_(list(metrics)))
    return q


def _pivot(rows: Sequence[Any], width: int) -> dict[tuple[Any, ...], dict[str, int]]:
    out: dict[tuple[Any, ...], dict[str, int]] = defaultdict(dict)
    for row in rows:
        key = tuple(_as_date(v) for v in row[:width])
        out[key][row[width]] = int(row[width + 1])
    return dict(out)


def _as_date(v: Any) -> Any:
    if isinstance(v, str) and len(v) == 10 and v[4] == v[7] == "-":
        try:  # SQLite's stored day; a step called "case-study" is not one
            return date.fromisoformat(v)
        except ValueError:
            return v
    return v


def _day(conn: Connection, col: Any) -> Any:
    if conn.dialect.name == "sqlite":
        return func.date(col, type_=rollup_counts.c.day.type)
    return cast(col, rollup_counts.c.day.type)


def _ledger_rows(conn: Connection) -> Any:
    """Every counted fact as a row: day, the dimensions, metric, and the unit it counts once per."""
    s = String()
    t, e = touches, events
    enr = enrollments.alias("enr")
    p = prospects.alias("p")
    empty = literal("")

    def key(prefix: str, col: Any) -> Any:
        return literal_column(f"'{prefix}'", s).concat(cast(col, s))

    def dom(email: Any) -> Any:
        at = func.instr(email, "@") if conn.dialect.name == "sqlite" else func.strpos(email, "@")
        return func.lower(func.coalesce(func.substr(email, at + 1), empty))

    touch_metric = case(*[(t.c.status == st, m) for st, m in TOUCH_METRICS.items()])
    touch_rows = (
        select(
            _day(conn, t.c.executed_at).label("day"),
            enr.c.cadence_id,
            t.c.step_id,
            func.coalesce(t.c.variant, empty).label("variant"),
            t.c.channel,
            enr.c.owner_email,
            enr.c.sender_email.label("mailbox"),
            dom(p.c.email).label("domain"),
            touch_metric.label("metric"),
            key("t", t.c.id).label("unit"),
        )
        .join(enr, enr.c.id == t.c.enrollment_id)
        .join(p, p.c.id == enr.c.prospect_id)
        .where(t.c.status.in_(list(TOUCH_METRICS)))
    )
    outcome = case(*[(e.c.type == ty, m) for ty, m in EVENT_METRICS.items()])
    is_task = and_(e.c.source == "task", e.c.type.in_(["completed", "skipped"]))
    outcome_name = func.coalesce(e.c.payload["outcome"].as_string(), e.c.type)
    metric = case((is_task, literal_column("'tasks_done:'", s).concat(outcome_name)), else_=outcome)
    has_touch = t.c.id.is_not(None)
    event_rows = (
        select(
            _day(
                conn, case((and_(has_touch, ~is_task), t.c.executed_at), else_=e.c.occurred_at)
            ).label("day"),
            func.coalesce(enr.c.cadence_id, empty),
            func.coalesce(t.c.step_id, empty),
            func.coalesce(t.c.variant, empty),
            func.coalesce(t.c.channel, empty),
            func.coalesce(enr.c.owner_email, empty),
            func.coalesce(enr.c.sender_email, empty),
            dom(p.c.email),
            metric,
            case((and_(has_touch, ~is_task), e.c.touch_key), else_=key("e", e.c.id)),
        )
        .select_from(e)
        .outerjoin(t, t.c.key == e.c.touch_key)
        .outerjoin(enr, enr.c.id == func.coalesce(t.c.enrollment_id, e.c.enrollment_id))
        .outerjoin(p, p.c.id == enr.c.prospect_id)
        .where(or_(is_task, e.c.type.in_(list(EVENT_METRICS))))
    )
    task_rows = (
        select(
            _day(conn, tasks.c.created_at),
            enr.c.cadence_id,
            tasks.c.step_id,
            func.coalesce(t.c.variant, empty),
            tasks.c.channel,
            enr.c.owner_email,
            enr.c.sender_email,
            empty,
            literal("tasks_created"),
            key("k", tasks.c.id),
        )
        .select_from(tasks)
        .join(enr, enr.c.id == tasks.c.enrollment_id)
        .outerjoin(t, t.c.key == tasks.c.touch_key)
    )
    return union_all(touch_rows, event_rows, task_rows)


FUNNEL_TIMES = (
    "contacted_at",
    "engaged_at",
    "replied_at",
    "meeting_at",
    "sql_at",
    "opportunity_at",
    "won_at",
)


def rollup_funnel_rows(
    conn: Connection,
    *,
    cadence: str | None = None,
    owner: Owners = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The funnel read model: one row per enrollment with its first time at each stage."""
    f = rollup_funnel.c
    q = select(rollup_funnel)
    if cadence is not None:
        q = q.where(f.cadence_id == cadence)
    if owner is not None:
        q = q.where(owner_is(f.owner_email, owner))
    if since is not None:
        q = q.where(f.enrolled_at >= since)
    if until is not None:
        q = q.where(f.enrolled_at < until)
    result = conn.execute(q)
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def ledger_funnel_rows(
    conn: Connection,
    *,
    cadence: str | None = None,
    owner: Owners = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """:func:`rollup_funnel_rows` computed from the ledger, events and score history directly."""
    en, t, e = enrollments, touches, events
    q = select(en.c.id, en.c.prospect_id, en.c.cadence_id, en.c.owner_email, en.c.enrolled_at)
    if cadence is not None:
        q = q.where(en.c.cadence_id == cadence)
    if owner is not None:
        q = q.where(owner_is(en.c.owner_email, owner))
    if since is not None:
        q = q.where(en.c.enrolled_at >= since)
    if until is not None:
        q = q.where(en.c.enrolled_at < until)
    rows = {
        r.id: {
            "enrollment_id": r.id,
            "prospect_id": r.prospect_id,
            "cadence_id": r.cadence_id,
            "owner_email": r.owner_email,
            "enrolled_at": r.enrolled_at,
            **dict.fromkeys(FUNNEL_TIMES),
        }
        for r in conn.execute(q)
    }

    def lower(eid: Any, col: Any, at: Any) -> None:
        row = rows.get(eid)
        if row is not None and at is not None and (row[col] is None or at < row[col]):
            row[col] = at

    for eid, at in conn.execute(
        select(t.c.enrollment_id, func.min(t.c.executed_at))
        .where(t.c.status == "sent")
        .group_by(t.c.enrollment_id)
    ):
        lower(eid, "contacted_at", at)
    stage = case(
        *[
            (e.c.type == ty, _FUNNEL_COLUMN[m])
            for ty, m in EVENT_METRICS.items()
            if m in _FUNNEL_COLUMN
        ]
    )
    eid_col = func.coalesce(t.c.enrollment_id, e.c.enrollment_id)
    attributed = (
        select(eid_col, stage.label("stage"), func.min(e.c.occurred_at))
        .select_from(e)
        .outerjoin(t, t.c.key == e.c.touch_key)
        .where(stage.is_not(None), eid_col.is_not(None))
        .group_by(eid_col, stage)
    )
    for eid, col, at in conn.execute(attributed):
        lower(eid, col, at)
    en2 = enrollments.alias("en2")
    by_prospect = (
        select(en2.c.id, stage.label("stage"), func.min(e.c.occurred_at))
        .select_from(e)
        .outerjoin(t, t.c.key == e.c.touch_key)
        .join(en2, and_(en2.c.prospect_id == e.c.prospect_id, en2.c.enrolled_at <= e.c.occurred_at))
        .where(stage.is_not(None), eid_col.is_(None))
        .group_by(en2.c.id, stage)
    )
    for eid, col, at in conn.execute(by_prospect):
        lower(eid, col, at)
    sql: dict[Any, Any] = dict(
        conn.execute(
            select(score_history.c.prospect_id, func.min(score_history.c.scored_at))
            .where(score_history.c.lifecycle == "sql")
            .group_by(score_history.c.prospect_id)
        ).all()
    )
    for row in rows.values():
        at = sql.get(row["prospect_id"])
        if at is not None:
            row["sql_at"] = max(at, row["enrolled_at"])
    domain_of: dict[Any, Any] = dict(
        conn.execute(
            select(prospects.c.id, prospects.c.domain).where(
                prospects.c.id.in_(select(en.c.prospect_id))
            )
        ).all()
    )
    by_domain = _deals_by_domain(conn, {d for d in domain_of.values() if d})
    for row in rows.values():
        found = by_domain.get(domain_of.get(row["prospect_id"]) or "", [])
        row["opportunity_at"], row["won_at"] = deal_stage_times(_aware(row["contacted_at"]), found)
    return list(rows.values())


FunnelTimes = tuple[str, int, list[float | None]]  # cadence, prospect, epoch seconds per stage


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back the stored text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def funnel_times(
    conn: Connection,
    *,
    cadence: str | None = None,
    owner: Owners = None,
    since: datetime | None = None,
    until: datetime | None = None,
    ledger: bool = False,
) -> list[FunnelTimes]:
    """Per enrollment: its cadence, prospect and the time of each stage (``enrolled_at`` first).

    From the read model by one plain driver query (a dashboard reads this on
    every view: no ORM rows, no per-value type processing); ``ledger=True``
    computes it from the ledger instead (:func:`ledger_funnel_rows`).
    """
    cols = ("enrolled_at", *FUNNEL_TIMES)
    if ledger:
        rows = ledger_funnel_rows(conn, cadence=cadence, owner=owner, since=since, until=until)
        return [(r["cadence_id"], r["prospect_id"], [_epoch(r[c]) for c in cols]) for r in rows]
    where, params = _funnel_where(conn, cadence, owner, since, until)
    sql = f"SELECT cadence_id, prospect_id, {', '.join(cols)} FROM rollup_funnel{where}"
    return [
        (row[0], row[1], [_epoch(v) for v in row[2:]])
        for row in conn.exec_driver_sql(sql, tuple(params))
    ]


def _funnel_where(
    conn: Connection,
    cadence: str | None,
    owner: Owners,
    since: datetime | None,
    until: datetime | None,
) -> tuple[str, list[Any]]:
    """The read model's filter as driver SQL (`` WHERE ...`` or empty) and its parameters."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    where: list[str] = []
    params: list[Any] = []

    def naive(at: datetime) -> Any:
        plain = at.astimezone(UTC).replace(tzinfo=None)
        return plain.strftime("%Y-%m-%d %H:%M:%S.%f") if conn.dialect.name == "sqlite" else plain

    if owner is not None and not isinstance(owner, str):  # a viewer's team
        team = sorted(owner)
        where.append(f"owner_email IN ({', '.join([mark] * len(team))})" if team else "1 = 0")
        params.extend(team)
        owner = None
    for clause, value in (
        (f"cadence_id = {mark}", cadence),
        (f"owner_email = {mark}", owner),
        (f"enrolled_at >= {mark}", naive(since) if since else None),
        (f"enrolled_at < {mark}", naive(until) if until else None),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), params


#: Per funnel stage (``enrolled_at`` first): how many reached it, and the median hours
#: from the stage before (None for the first stage, and where nobody reached it).
FunnelSummary = tuple[list[int], list[float | None]]


def funnel_summary(
    conn: Connection,
    *,
    cadence: str | None = None,
    owner: Owners = None,
    since: datetime | None = None,
    until: datetime | None = None,
    per_cadence: bool = True,
) -> dict[str | None, FunnelSummary]:
    """The funnel per cadence and overall (key None), summarized by PostgreSQL in one query;
    overall only if not ``per_cadence`` (half the work: the dashboard's overview).

    The rules, as ``services.reporting._summary`` applies them to the rows of
    :func:`funnel_times` (the same figures, to the bit: the same float operations
    on the same epoch seconds, and ``percentile_cont`` interpolates as
    ``domain.statistics.percentile`` does):

    * a stage passed on the way to a later one counts as reached then (the
      first non-null of its own and every later stage's time);
    * the gap to the stage before is ``max((t_i - t_{i-1}) / 3600, 0)`` hours,
      and the median is over those who reached the stage;
    * overall, a prospect counts once, at each stage's first time over all their
      enrollments in the filter.

    Only the cadences' few summary rows cross the wire, however many enrollments
    the window holds (a 14-day window at a million enrollments is ~40,000).
    """
    cols = ("enrolled_at", *FUNNEL_TIMES)
    n = len(cols)
    where, params = _funnel_where(conn, cadence, owner, since, until)
    # date_part, not EXTRACT: float8 straight away (EXTRACT's numeric costs ~10%), and the
    # same double as Python's timestamp(): whole microseconds / 1e6, correctly rounded.
    epochs = ", ".join(f"date_part('epoch', {c}) AS t{i}" for i, c in enumerate(cols))
    ts = ", ".join(f"t{i}" for i in range(n))
    mins = ", ".join(f"MIN(t{i}) AS t{i}" for i in range(n))
    reached = ", ".join(
        (f"COALESCE({', '.join(f't{j}' for j in range(i, n))})" if i < n - 1 else f"t{i}")
        + f" AS r{i}"
        for i in range(n)
    )
    counts = ", ".join(f"COUNT(r{i})" for i in range(n))
    medians = ", ".join(
        # Not GREATEST(..., 0): it ignores a NULL, and a stage not reached has no gap.
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN r{i} < r{i - 1} THEN 0.0::float8"
        f" ELSE (r{i} - r{i - 1}) / 3600.0::float8 END)"
        for i in range(1, n)
    )
    sql = f"""
        WITH f AS (SELECT cadence_id, prospect_id, {epochs} FROM rollup_funnel{where}),
        u AS (
            {f"SELECT cadence_id AS grp, {ts} FROM f UNION ALL" if per_cadence else ""}
            SELECT NULL AS grp, {mins} FROM f GROUP BY prospect_id
        ),
        r AS (SELECT grp, {reached} FROM u)
        SELECT grp, {counts}, {medians} FROM r GROUP BY grp"""
    out: dict[str | None, FunnelSummary] = {}
    # Room to sort and group a year of enrollments in memory (4MB spills to disk), for
    # this transaction only.
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    for row in conn.exec_driver_sql(sql, tuple(params)):
        got: list[Any] = list(row)
        gaps: list[float | None] = [None, *got[n + 1 :]]
        out[got[0]] = ([int(c) for c in got[1 : n + 1]], gaps)
    return out
