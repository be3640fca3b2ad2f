"""``run_cadences``: the scheduled tick, as a Prefect flow; it fans out to ``tick-shard`` runs.

The flow holds no business logic. Run by the ``run-cadences`` deployment on
PostgreSQL it is a parent: it settles stale claims (recovery and the bounce
shield, once per tick), counts what is due and submits up to
``TOUCHFLOW_TICK__SHARDS`` runs of the ``tick-shard`` deployment
(:mod:`touchflow.entrypoints.flows.tick_shard`) with the same ``now``, one per
batch that is due, then ends (one batch or less it runs itself: a shard's
process start would cost more than the work). Every worker of the pool takes shards, and each
shard claims with ``SKIP LOCKED`` until nothing is due
(:mod:`touchflow.services.shards`).

It does not wait for the shards (``run_deployment(..., timeout=0)``): a parent
that waited would hold a worker slot for the whole tick, so with workers
started with ``--limit 1`` one worker would sit on the parent while the
others did all the work. The shards are its subflows in the UI, each with its
own summary line; the next tick's recovery settles whatever a crashed shard
left.

Everywhere else (no deployment: ``python -m`` this module, the demo, tests;
or SQLite, whose single writer shards would only queue on) the tick runs
inline: :func:`touchflow.services.tick.tick_until_idle`, each batch of up to
``batch_size`` enrollments one Prefect task (never one task per touch).
Retries happen only for retryable errors; a rerun after a crash is safe
because the ledger, not Prefect state, decides what was sent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger, runtime

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import (
    batch_task,
    flow_log,
    log_summary,
    retry_only_retryable,
)
from touchflow.services.reporting import refresh
from touchflow.services.shards import drain, fans_out, shard_count
from touchflow.services.tick import Ticker, batch_step, recover_step, tick_until_idle

__all__ = ["SHARD_DEPLOYMENT", "retry_only_retryable", "run_cadences"]

#: ``<flow name>/<deployment name>`` of the shards, as prefect.yaml declares it.
SHARD_DEPLOYMENT = "tick_shard/tick-shard"

ledger_task = batch_task(retry_delay_seconds=1)


@ledger_task
def recover_claims(tk: Ticker, now: datetime) -> dict[str, int]:
    """Mark touches left ``sending`` by a crashed worker as ``unknown``; run the bounce shield."""
    # A cadence the shield paused is a warning: seen whatever the log level.
    return recover_step(tk, now, announce=get_run_logger().warning)


@ledger_task
def run_batch(tk: Ticker, now: datetime, limit: int) -> dict[str, int]:
    """Claim, decide, send and record one batch of due enrollments."""
    return batch_step(tk, now, limit)


@flow(name="run_cadences", log_prints=True, persist_result=False)
def run_cadences(now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    """One tick: send every touch and create every task that is due at ``now``.

    Under a deployment on PostgreSQL it submits ``tick-shard`` runs and
    returns the recovery counts and ``shards`` (how many it started);
    otherwise it runs the whole tick here and returns its counts.
    """
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    now = now or datetime.now(UTC)
    batch = batch_size or settings.batch_size
    with bootstrap.ticker(settings) as tk:
        if runtime.deployment.id is not None and fans_out(tk.engine) and settings.tick.shards > 1:
            recovered = recover_claims(tk, now)
            n = shard_count(tk.engine, now, settings.tick.shards, batch)
            if n > 1:
                report = {**recovered, "shards": submit_shards(n, now, batch)}
            else:  # a batch or less: a shard's process start would cost more than the work
                done, _ = drain(tk, now, batch, run_batch=run_batch)
                done.unknown += recovered["unknown"]
                report = done.as_dict()
        else:
            report = tick_until_idle(
                tk, now, batch, recover=recover_claims, run_batch=run_batch
            ).as_dict()
        refresh(tk.engine)  # the rollups: never more than one tick behind (shards refresh too)
    log_summary(log, "run_cadences", report, started)
    return report


def submit_shards(n: int, now: datetime, batch_size: int) -> int:
    """Start ``n`` ``tick-shard`` runs of this tick on the work pool, without waiting for them.

    Each is this run's subflow in the UI; the idempotency key makes a retried
    parent find its shards instead of starting them twice.
    """
    from prefect.deployments import run_deployment

    parent = runtime.flow_run.id
    for i in range(n):
        run_deployment(
            SHARD_DEPLOYMENT,
            parameters={"now": now.isoformat(), "batch_size": batch_size},
            flow_run_name=f"{now:%Y-%m-%d %H:%M} shard {i + 1} of {n}",
            idempotency_key=f"{parent}:shard:{i}",
            timeout=0,
        )
    return n


def main() -> None:
    """``python -m touchflow.entrypoints.flows.run_cadences``: one tick through Prefect.

    Starting the flow locally starts Prefect's ephemeral server (~10 s), so an
    idle database is answered from two cheap reads without it.
    """
    from touchflow.services.status import due_work

    now = datetime.now(UTC)
    work = due_work(bootstrap.database(bootstrap.load_settings()), now)
    if work.idle:
        print(f"nothing due at {now:%Y-%m-%d %H:%M} UTC; the flow was not started")
        return
    print(run_cadences(now=now))


if __name__ == "__main__":
    main()
