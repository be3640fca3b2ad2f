"""``sync_crm``: push queued leads and activities to the CRM, pull what changed there.

Scheduled (``prefect.yaml``: every 5 minutes). One task queues the touches and
completed tasks not yet logged, one drains the outbox in batches (the
connector batches people upserts), one pulls changes page by page; the work is
in :mod:`touchflow.services.crm_sync`. A CRM outage only delays: the outbox
keeps every push with its attempts and next try.
"""

from __future__ import annotations

import time
from contextlib import closing
from datetime import UTC, datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import batch_task, flow_log, log_summary

crm_task = batch_task(retry_delay_seconds=10)


@crm_task
def queue_activities(now: datetime) -> int:
    """Queue the touches and completed tasks of the last week not yet logged in the CRM."""
    with closing(bootstrap.required_crm_sync(bootstrap.load_settings())) as sync:
        return sync.queue(now)


@crm_task
def push(now: datetime, rounds: int = 50) -> dict[str, int]:
    """Drain the outbox: up to ``rounds`` batches of ``crm.batch_size`` rows."""
    with closing(bootstrap.required_crm_sync(bootstrap.load_settings())) as sync:
        return sync.push(now, rounds)


@crm_task
def pull(now: datetime) -> dict[str, int]:
    """Apply meetings booked, deals created and owner changes since the last pull."""
    with closing(bootstrap.required_crm_sync(bootstrap.load_settings())) as sync:
        return sync.pull(now)


@flow(name="sync_crm", log_prints=True, persist_result=False)
def sync_crm(now: datetime | None = None) -> dict[str, dict[str, int] | int]:
    """One sync: queue new activities, push the outbox, pull changes."""
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    if settings.crm.provider == "none":
        log.info("no CRM configured (TOUCHFLOW_CRM__PROVIDER)")
        return {}
    at = now or datetime.now(UTC)
    queued = queue_activities(at)
    result: dict[str, dict[str, int] | int] = {"queued": queued, "push": push(at), "pull": pull(at)}
    log_summary(log, "sync_crm", result, started)
    return result


if __name__ == "__main__":
    print(sync_crm())
