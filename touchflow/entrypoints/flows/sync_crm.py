"""``sync_crm``: push queued leads and activities to the CRM, pull what changed there.

Scheduled (``prefect.yaml``: every 5 minutes). One task queues the touches and
completed tasks not yet logged, one drains the outbox in batches (the
connector batches people upserts), one pulls changes page by page; the work is
in :mod:`touchflow.services.crm_sync`. A CRM outage only delays: the outbox
keeps every push with its attempts and next try.
"""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import batch_task
from touchflow.services.crm_sync import drain_rounds, pull_changes, queue_new_activities

crm_task = batch_task(retry_delay_seconds=10)


@crm_task
def queue_activities(now: datetime) -> int:
    """Queue the touches and completed tasks of the last week not yet logged in the CRM."""
    settings = bootstrap.load_settings()
    connector = bootstrap.required_crm(settings)
    with bootstrap.database(settings).begin() as conn:
        return queue_new_activities(conn, connector.name, now)


@crm_task
def push(now: datetime, rounds: int = 50) -> dict[str, int]:
    """Drain the outbox: up to ``rounds`` batches of ``crm.batch_size`` rows."""
    settings = bootstrap.load_settings()
    with closing(bootstrap.required_crm(settings)) as connector:
        return drain_rounds(
            bootstrap.database(settings),
            connector,
            now,
            batch_size=settings.crm.batch_size,
            max_attempts=settings.crm.max_attempts,
            rounds=rounds,
        )


@crm_task
def pull(now: datetime) -> dict[str, int]:
    """Apply meetings booked, deals created and owner changes since the last pull."""
    settings = bootstrap.load_settings()
    with closing(bootstrap.required_crm(settings)) as connector:
        return pull_changes(
            bootstrap.database(settings),
            connector,
            bootstrap.runtimes(settings),
            now,
            owner_change_pause=timedelta(days=settings.crm.owner_change_pause_days),
        ).as_dict()


@flow(name="sync_crm", log_prints=True, persist_result=False)
def sync_crm(now: datetime | None = None) -> dict[str, dict[str, int] | int]:
    """One sync: queue new activities, push the outbox, pull changes."""
    settings = bootstrap.checked_settings("worker", log=print)
    if settings.crm.provider == "none":
        print("no CRM configured (TOUCHFLOW_CRM__PROVIDER)")
        return {}
    at = now or datetime.now(UTC)
    queued = queue_activities(at)
    return {"queued": queued, "push": push(at), "pull": pull(at)}


if __name__ == "__main__":
    print(sync_crm())
