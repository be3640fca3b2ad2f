"""``run_cadences``: one tick of every cadence, as a Prefect flow.

The flow holds no business logic: it recovers stale claims, then runs the
core's ledger protocol batch after batch (one task per batch of up to
``batch_size`` enrollments, never one per touch) until nothing is due.
Retries happen only for retryable errors; a rerun after a crash is safe
because the ledger, not Prefect state, decides what was sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import OperationalError

from touchflow.bootstrap import ticker
from touchflow.errors import RetryableError
from touchflow.services.tick import Ticker, TickReport
from touchflow.settings import Settings


def retry_only_retryable(task_: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: transient provider errors and a busy database only."""
    try:
        state.result()
    except (RetryableError, OperationalError):
        return True
    except Exception:
        return False
    return False


def batch_task(retry_delay_seconds: int) -> Any:
    """The task options of every touchflow flow.

    Each task works a whole batch (or stage, or mailbox) and returns counts,
    never rows: nothing to cache or persist. It retries only retryable errors,
    which is safe because the store (ledger, outbox, dedupe keys), not
    Prefect, knows what was done.
    """
    return task(
        cache_policy=NO_CACHE,
        retries=2,
        retry_delay_seconds=retry_delay_seconds,
        retry_condition_fn=retry_only_retryable,
        persist_result=False,
    )


ledger_task = batch_task(retry_delay_seconds=1)


@ledger_task
def recover_claims(tk: Ticker, now: datetime) -> dict[str, int]:
    """Mark touches left ``sending`` by a crashed worker as ``unknown``; run the bounce shield."""
    report = tk.recover().as_dict()
    paused = tk.check_bounce_shield(now)
    if paused:
        print(f"bounce shield paused: {', '.join(paused)} (touchflow cadence resume ID)")
    return report


@ledger_task
def run_batch(tk: Ticker, now: datetime, limit: int) -> dict[str, int]:
    """Claim, decide, send and record one batch of due enrollments."""
    return tk.run_batch(now, limit).as_dict()


def tick(tk: Ticker, now: datetime, batch_size: int) -> TickReport:
    """The flow body without Prefect decoration around it (also used by ``.fn``)."""
    total = TickReport()
    recovered = recover_claims(tk, now)
    total.unknown += recovered["unknown"]
    while True:
        report = TickReport(**run_batch(tk, now, batch_size))
        total += report
        if report.claimed < batch_size:
            return total


@flow(name="run_cadences", log_prints=True, persist_result=False)
def run_cadences(now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    """One tick: send every touch and create every task that is due at ``now``."""
    settings = Settings()
    tk = ticker(settings)
    try:
        return tick(tk, now or datetime.now(UTC), batch_size or settings.batch_size).as_dict()
    finally:
        tk.email.close()
        if tk.sms is not None:
            tk.sms.close()


if __name__ == "__main__":
    print(run_cadences())
