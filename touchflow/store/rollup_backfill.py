"""The first refresh over a large history, set-based (PostgreSQL).

The high-water-mark fold (:mod:`touchflow.store.rollups`) reads rows into
Python and folds them in rounds: right for a tick's thousands of rows, ~5,000
rows/s for a history of millions (10M touches and their events: over an hour).
When the rollups are empty and the ledger is large, :func:`backfill` instead
fills every read model by ``INSERT ... SELECT ... GROUP BY`` over the ledger,
the same GROUP BYs the tests and the benchmark compare the rollups with
(:func:`~touchflow.store.rollups.ledger_counts`), in one REPEATABLE READ
transaction, so the counters, the marks, the gaps (ids below a mark not
visible in its snapshot) and the unsettled touches all describe one instant.
The fold then carries on from those marks exactly as after any refresh.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, column, func, insert, literal, select, table, text

from touchflow.store import rollups as r
from touchflow.store.schema import (
    rollup_cadence,
    rollup_counts,
    rollup_delivery,
    rollup_mailbox,
    rollup_seen,
)

__all__ = ["BACKFILL_MIN_ROWS", "backfill", "wanted"]

#: Below this many touches + events the fold is fast enough (and exercised by every test).
BACKFILL_MIN_ROWS = 200_000
_LEDGER_COLUMNS = ("day", *r.DIMENSIONS, "domain", "metric", "unit")


def wanted(engine: Engine, min_rows: int | None = None) -> bool:
    """True on PostgreSQL when nothing was folded yet and the ledger has ``min_rows``
    (default :data:`BACKFILL_MIN_ROWS`) or more touches and events."""
    min_rows = BACKFILL_MIN_ROWS if min_rows is None else min_rows
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM rollup_marks LIMIT 1")).first() is not None:
            return False
        # Estimates are enough to choose a path (and cost nothing on 10M rows).
        n: Any = conn.execute(
            text(
                "SELECT coalesce(sum(greatest(reltuples, 0)), 0) FROM pg_class"
                " WHERE oid IN (to_regclass('touches'), to_regclass('events'))"
            )
        ).scalar_one()
        if n < min_rows:  # never analyzed: reltuples -1; count up to the threshold
            n = conn.execute(
                text("SELECT count(*) FROM (SELECT 1 FROM touches LIMIT :n) t"), {"n": min_rows}
            ).scalar_one()
    return int(n) >= min_rows


def backfill(engine: Engine, wall: datetime, report: r.RefreshReport) -> bool:
    """Fill the empty rollups from the whole ledger; False if another refresh got there first."""
    started = time.perf_counter()
    with engine.connect() as conn:
        # A session lock (the fold takes the same key per transaction): held before the
        # REPEATABLE READ snapshot is taken, so that snapshot sees any refresh before us.
        conn.execute(
            text("SELECT pg_advisory_lock(:a, :b)"), {"a": r._LOCK_SPACE, "b": r._LOCK_KEY}
        )
        conn.commit()
        try:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if conn.execute(text("SELECT 1 FROM rollup_marks LIMIT 1")).first() is not None:
                    return False
                conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
                _fill(conn, wall, report)
        finally:
            conn.execution_options(isolation_level="READ COMMITTED")
            conn.execute(
                text("SELECT pg_advisory_unlock(:a, :b)"), {"a": r._LOCK_SPACE, "b": r._LOCK_KEY}
            )
            conn.commit()
    with engine.connect() as conn:  # the planner's statistics of the tables just filled
        conn.exec_driver_sql(f"ANALYZE {', '.join(_FILLED)}")
        conn.commit()
    report.rounds += 1
    report.seconds = time.perf_counter() - started
    return True


_FILLED = (
    "rollup_counts",
    "rollup_cadence",
    "rollup_delivery",
    "rollup_mailbox",
    "rollup_seen",
    "rollup_funnel",
)


def _fill(conn: Connection, wall: datetime, report: r.RefreshReport) -> None:
    # The ledger's rows once into a temporary table (no WAL), then every GROUP BY over it:
    # the union joins 10M touches and their events, three reads of it cost three joins.
    query = select(r._ledger_rows(conn).subquery("l")).compile(
        dialect=conn.dialect, compile_kwargs={"literal_binds": True}
    )
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE rollup_backfill_ledger ON COMMIT DROP AS "
        + str(query).replace("%", "%%")
    )
    ledger = table("rollup_backfill_ledger", *(column(name) for name in _LEDGER_COLUMNS))
    dims = [ledger.c[d] for d in ("day", *r.DIMENSIONS)]
    conn.execute(
        insert(rollup_counts).from_select(
            ["day", *r.DIMENSIONS, "metric", "n"],
            select(*dims, ledger.c.metric, func.count(func.distinct(ledger.c.unit))).group_by(
                *dims, ledger.c.metric
            ),
        )
    )
    c = rollup_counts.c
    narrow = [c.day, c.cadence_id, c.step_id, c.variant]
    conn.execute(
        insert(rollup_cadence).from_select(
            ["day", "cadence_id", "step_id", "variant", "metric", "n"],
            select(*narrow, c.metric, func.sum(c.n)).group_by(*narrow, c.metric),
        )
    )
    conn.execute(
        insert(rollup_delivery).from_select(
            ["day", "mailbox", "domain", "metric", "n"],
            select(
                ledger.c.day,
                ledger.c.mailbox,
                ledger.c.domain,
                ledger.c.metric,
                func.count(func.distinct(ledger.c.unit)),
            )
            .where(
                ledger.c.channel == literal("email"),
                ledger.c.metric.in_(sorted(r.DELIVERY_METRICS)),
            )
            .group_by(ledger.c.day, ledger.c.mailbox, ledger.c.domain, ledger.c.metric),
        )
    )
    d = rollup_delivery.c
    conn.execute(
        insert(rollup_mailbox).from_select(
            ["day", "mailbox", "metric", "n"],
            select(d.day, d.mailbox, d.metric, func.sum(d.n)).group_by(d.day, d.mailbox, d.metric),
        )
    )
    # Outcome events count once per (touch, metric): what later events are checked against.
    counted_once = [*r.TOUCH_METRICS.values(), "tasks_created"]
    conn.execute(
        insert(rollup_seen).from_select(
            ["unit", "metric"],
            select(ledger.c.unit, ledger.c.metric)
            .distinct()
            .where(~ledger.c.metric.like("tasks_done:%"), ledger.c.metric.not_in(counted_once)),
        )
    )
    _fill_funnel(conn)
    for src in r.SOURCES:
        _mark(conn, src, wall, report)
    r.bump_generation(conn, wall)
    conn.execute(
        text(
            "INSERT INTO rollup_pending (source, row_id, kind, seen_at)"
            " SELECT 'touches', id, 'unsettled', :wall FROM touches WHERE status = ANY(:st)"
            " ON CONFLICT (source, row_id) DO UPDATE SET kind = 'unsettled'"
        ),
        {"wall": _naive(wall), "st": list(r.UNSETTLED)},
    )
    report.pending = conn.execute(text("SELECT count(*) FROM rollup_pending")).scalar_one()


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def _mark(conn: Connection, src: str, wall: datetime, report: r.RefreshReport) -> None:
    """The source's mark at its highest visible id; every invisible id below it a gap."""
    table = r._SOURCE_TABLES[src].name
    row: Any = conn.execute(text(f"SELECT max(id), count(*) FROM {table}")).one()
    top, n = row
    report.rows[src] += int(n)
    if top is None:
        return
    conn.execute(
        text(
            "INSERT INTO rollup_pending (source, row_id, kind, seen_at)"
            " SELECT :src, generate_series(prev + 1, id - 1), 'gap', :wall FROM"
            f" (SELECT id, lag(id, 1, 0) OVER (ORDER BY id) AS prev FROM {table}) s"
            " WHERE id - prev > 1"
        ),
        {"src": src, "wall": _naive(wall)},
    )
    conn.execute(
        text("INSERT INTO rollup_marks (source, mark, updated_at) VALUES (:src, :top, :wall)"),
        {"src": src, "top": int(top), "wall": _naive(wall)},
    )


# The funnel: every enrollment's first time at each stage, as ledger_funnel_rows computes it.
_STAGE_OF_EVENT = " ".join(
    f"WHEN '{ty}' THEN '{r._FUNNEL_COLUMN[m]}'"
    for ty, m in r.EVENT_METRICS.items()
    if m in r._FUNNEL_COLUMN
)
_FUNNEL_SQL = f"""
WITH ev AS (
    SELECT coalesce(t.enrollment_id, e.enrollment_id) AS eid, e.prospect_id,
           CASE e.type {_STAGE_OF_EVENT} END AS stage, e.occurred_at AS at
    FROM events e LEFT JOIN touches t ON t.key = e.touch_key
), by_enrollment AS (
    SELECT eid, min(at) FILTER (WHERE stage = 'engaged_at') AS engaged_at,
           min(at) FILTER (WHERE stage = 'replied_at') AS replied_at,
           min(at) FILTER (WHERE stage = 'meeting_at') AS meeting_at
    FROM ev WHERE stage IS NOT NULL AND eid IS NOT NULL GROUP BY eid
), by_prospect AS (
    SELECT en2.id AS eid, min(ev.at) FILTER (WHERE stage = 'engaged_at') AS engaged_at,
           min(ev.at) FILTER (WHERE stage = 'replied_at') AS replied_at,
           min(ev.at) FILTER (WHERE stage = 'meeting_at') AS meeting_at
    FROM ev JOIN enrollments en2
      ON en2.prospect_id = ev.prospect_id AND en2.enrolled_at <= ev.at
    WHERE ev.stage IS NOT NULL AND ev.eid IS NULL GROUP BY en2.id
), contacted AS (
    SELECT enrollment_id AS eid, min(executed_at) AS at FROM touches
    WHERE status = 'sent' GROUP BY enrollment_id
), sql_stage AS (
    SELECT prospect_id, min(scored_at) AS at FROM score_history
    WHERE lifecycle = 'sql' GROUP BY prospect_id
)
INSERT INTO rollup_funnel (enrollment_id, prospect_id, cadence_id, owner_email, enrolled_at,
    contacted_at, engaged_at, replied_at, meeting_at, sql_at)
SELECT en.id, en.prospect_id, en.cadence_id, en.owner_email, en.enrolled_at, c.at,
       least(a.engaged_at, b.engaged_at), least(a.replied_at, b.replied_at),
       least(a.meeting_at, b.meeting_at),
       CASE WHEN s.at IS NOT NULL THEN greatest(s.at, en.enrolled_at) END
FROM enrollments en
LEFT JOIN contacted c ON c.eid = en.id
LEFT JOIN by_enrollment a ON a.eid = en.id
LEFT JOIN by_prospect b ON b.eid = en.id
LEFT JOIN sql_stage s ON s.prospect_id = en.prospect_id
"""
# Opportunity and won: the account's deals created at or after the first contact
# (rollups.deal_stage_times).
_DEALS_SQL = """
UPDATE rollup_funnel f SET opportunity_at = x.opp, won_at = x.won
FROM (
    SELECT f2.enrollment_id, min(d.created_at) AS opp,
           min(CASE WHEN d.outcome = 'won' THEN coalesce(d.closed_at, d.updated_at) END) AS won
    FROM rollup_funnel f2 JOIN prospects p ON p.id = f2.prospect_id
    JOIN deals d ON d.account_domain = p.domain AND d.created_at >= f2.contacted_at
    GROUP BY f2.enrollment_id
) x
WHERE f.enrollment_id = x.enrollment_id
"""


def _fill_funnel(conn: Connection) -> None:
    conn.exec_driver_sql(_FUNNEL_SQL)
    conn.exec_driver_sql(_DEALS_SQL)
