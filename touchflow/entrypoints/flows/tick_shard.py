"""``tick_shard``: one shard of a tick, started by ``run_cadences`` on the work pool.

The ``tick-shard`` deployment (prefect.yaml) has no schedule: the
``run-cadences`` parent submits one run per batch that is due, up to
``TOUCHFLOW_TICK__SHARDS``, all with the tick's ``now``. A shard claims batch
after batch with ``SKIP LOCKED`` (:func:`touchflow.services.shards.drain`),
each batch one Prefect task, until nothing unclaimed is due or
``TOUCHFLOW_TICK__SHARD_BUDGET_S`` is spent (keep it under the schedule's
interval, so a slow tick's shards end before the next tick's start). It does
no recovery: the parent did that once for the whole tick.
"""

from __future__ import annotations

import time
from datetime import datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.run_cadences import run_batch
from touchflow.entrypoints.flows.tasks import flow_log, log_summary
from touchflow.services.reporting import refresh
from touchflow.services.shards import drain

__all__ = ["tick_shard"]


@flow(name="tick_shard", log_prints=True, persist_result=False)
def tick_shard(now: datetime, batch_size: int | None = None) -> dict[str, int]:
    """Claim, send and record batches of the tick at ``now`` until none is left or time is up."""
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    budget = settings.tick.shard_budget_s
    with bootstrap.ticker(settings) as tk:
        report, stopped = drain(
            tk, now, batch_size or settings.batch_size, budget_s=budget, run_batch=run_batch
        )
        # The rollups stay at most one tick behind however the tick was split;
        # shards' refreshes serialize on the rollups' lock and each adds what is new.
        refresh(tk.engine)
    counts = report.as_dict()
    log_summary(log, "tick_shard", counts, started)
    if stopped:
        log.warning(f"tick_shard: budget of {budget} s spent with work left; the next tick goes on")
    return counts
