"""The funnel summarized by PostgreSQL equals the same rules applied in Python, to the bit."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert

from touchflow.domain.compliance import CapPolicy
from touchflow.services import reporting
from touchflow.services.reporting import ReportContext, ReportQuery
from touchflow.store import rollups
from touchflow.store.db import make_engine
from touchflow.store.schema import rollup_funnel

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
OWNERS = ["sam@x.example", "lena@x.example", "ana@x.example"]


def _history(seed: int, n: int) -> list[dict[str, object]]:
    """Enrollments with gaps, skipped stages, stages out of order (a negative gap counts 0),
    microsecond times, and prospects enrolled more than once (the overall row's case)."""
    rng = random.Random(seed)
    rows = []
    for eid in range(1, n + 1):
        pid = rng.randint(1, n // 2)  # about half the prospects have two enrollments
        at = T0 + timedelta(days=rng.randint(0, 60), microseconds=rng.randint(0, 10**11))
        row: dict[str, object] = {
            "enrollment_id": eid,
            "prospect_id": pid,
            "cadence_id": rng.choice(["alpha", "beta", "gamma"]),
            "owner_email": rng.choice(OWNERS),
            "enrolled_at": at,
        }
        t = at
        for col in rollups.FUNNEL_TIMES:
            if rng.random() < 0.35:
                row[col] = None
                continue
            t = t + timedelta(
                seconds=rng.randint(-3600, 5 * 86400), microseconds=rng.randint(0, 999_999)
            )
            row[col] = t
        rows.append(row)
    return rows


QUERIES = [
    ReportQuery(),
    ReportQuery(since=date(2026, 9, 10), until=date(2026, 10, 5)),
    ReportQuery(cadence="beta"),
    ReportQuery(owners=frozenset(OWNERS[:2])),
    ReportQuery(owners=frozenset()),  # a viewer outside every team: nothing
    ReportQuery(owner=OWNERS[2], since=date(2026, 10, 1)),
    ReportQuery(since=date(2027, 1, 1)),  # no enrollment in the window
]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_database_summary_equals_the_python_one(pg_migrated_url: str, seed: int) -> None:
    engine = make_engine(pg_migrated_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(rollup_funnel), _history(seed, 600))
        ctx = ReportContext(now=T0, caps=CapPolicy())
        with engine.connect() as conn:
            for q in QUERIES:
                start, end = q.window()
                in_db = rollups.funnel_summary(conn, cadence=q.cadence, owner=q.owner_filter(),
                                               since=start, until=end)  # fmt: skip
                in_python = reporting._python_summaries(conn, q, ctx, start, end)
                # Exactly equal, medians included: the same float operations in both.
                assert {reporting.ALL if k is None else k: v for k, v in in_db.items()} == {
                    k: v for k, v in in_python.items() if k != reporting.ALL or in_db
                }, q
                alone = rollups.funnel_summary(
                    conn, cadence=q.cadence, owner=q.owner_filter(), since=start, until=end,
                    per_cadence=False,
                )  # fmt: skip
                assert alone == {k: v for k, v in in_db.items() if k is None}
                rows = reporting.funnel(conn, q, ctx).rows
                assert reporting.funnel_overall(conn, q, ctx).rows == [
                    r for r in rows if r["cadence"] == reporting.ALL
                ]
                assert rows[-len(reporting.FUNNEL_STAGES) :] == reporting._funnel_rows(
                    reporting.ALL, *in_python[reporting.ALL]
                )
                if q == ReportQuery():
                    assert len(in_db) == 4  # three cadences and the overall row
                    assert any(m is not None and m > 0 for m in in_db[None][1])
                    # The overall row counts prospects once: fewer than the enrollments.
                    assert in_db[None][0][0] < sum(v[0][0] for k, v in in_db.items() if k)
    finally:
        engine.dispose()
