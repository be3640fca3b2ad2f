"""``run_cadences``: one tick of every cadence, as a Prefect flow.

The flow holds no business logic: :func:`touchflow.services.tick.tick_until_idle`
recovers stale claims, then runs the ledger protocol batch after batch; here
each of those steps is one Prefect task (a batch of up to ``batch_size``
enrollments, never one task per touch). Retries happen only for retryable
errors; a rerun after a crash is safe because the ledger, not Prefect state,
decides what was sent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import (
    batch_task,
    flow_log,
    log_summary,
    retry_only_retryable,
)
from touchflow.services.reporting import refresh
from touchflow.services.tick import Ticker, batch_step, recover_step, tick_until_idle

__all__ = ["retry_only_retryable", "run_cadences"]

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
    """One tick: send every touch and create every task that is due at ``now``."""
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    with bootstrap.ticker(settings) as tk:
        report = tick_until_idle(
            tk,
            now or datetime.now(UTC),
            batch_size or settings.batch_size,
            recover=recover_claims,
            run_batch=run_batch,
        ).as_dict()
        refresh(tk.engine)  # the rollups are never more than one tick behind
    log_summary(log, "run_cadences", report, started)
    return report


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
