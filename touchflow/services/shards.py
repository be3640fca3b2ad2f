"""A tick split into shards: how many to start, and the loop each one runs.

On PostgreSQL a tick fans out: the ``run-cadences`` flow settles stale claims,
counts what is due and starts up to ``TOUCHFLOW_TICK__SHARDS`` ``tick-shard``
flow runs on the work pool, so every worker shares one tick. Each shard runs
:func:`drain`: batch after batch, claiming with ``FOR UPDATE SKIP LOCKED`` (two
shards never claim the same enrollment), until a batch comes back short
(nothing left that another shard has not claimed) or its time budget is
spent. The ledger, not the shard count, keeps every send at most once.

SQLite has one writer: shards would only queue on its lock, so there (and
whenever no Prefect deployment is running the tick: ``touchflow run``, the
demo, tests) the tick runs the same loop inline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from touchflow.services.tick import BatchStep, Ticker, TickReport, batch_step
from touchflow.store.status import due_work

__all__ = ["drain", "fans_out", "shard_count"]


def fans_out(engine: Engine) -> bool:
    """Whether the database lets shards claim side by side (PostgreSQL's row locks)."""
    return engine.dialect.name == "postgresql"


def shard_count(engine: Engine, now: datetime, shards: int, batch_size: int) -> int:
    """How many shards a tick at ``now`` needs: one per batch that is due, at most ``shards``.

    0 when nothing is due. A shard started for less than a batch would find
    nothing left to claim and only cost a flow run.
    """
    with engine.connect() as conn:
        due = due_work(conn, now).due
    return min(shards, math.ceil(due / batch_size))


def drain(
    tk: Ticker,
    now: datetime,
    batch_size: int,
    *,
    budget_s: float | None = None,
    run_batch: BatchStep = batch_step,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[TickReport, bool]:
    """Batch after batch until nothing unclaimed is due at ``now`` or ``budget_s`` is spent.

    Returns the counts and whether the budget stopped it with work maybe
    left (the next tick takes it). The budget is checked between batches: a
    batch that started is always finished and recorded.
    """
    total = TickReport()
    deadline = None if budget_s is None else clock() + budget_s
    while True:
        report = TickReport(**run_batch(tk, now, batch_size))
        total += report
        if report.claimed < batch_size:
            return total, False
        if deadline is not None and clock() >= deadline:
            return total, True
