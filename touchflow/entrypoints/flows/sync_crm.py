"""``sync_crm``: push queued leads and activities to the CRM, pull what changed there.

Scheduled (``prefect.yaml``: every 5 minutes). One task drains the outbox in
batches (the connector batches people upserts), one queues the touches and
completed tasks not yet logged, one pulls changes page by page. A CRM outage
only delays: the outbox keeps every push with its attempts and next try.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow

from touchflow.bootstrap import crm_connector, database, runtimes
from touchflow.domain.crm import CrmConnector
from touchflow.entrypoints.flows.run_cadences import batch_task
from touchflow.errors import ConfigError
from touchflow.services.crm_sync import drain_outbox, pull_changes, queue_new_activities
from touchflow.settings import Settings

crm_task = batch_task(retry_delay_seconds=10)


def _connector(settings: Settings) -> CrmConnector:
    connector = crm_connector(settings)
    if connector is None:
        raise ConfigError("no CRM configured: set TOUCHFLOW_CRM__PROVIDER")
    return connector


@crm_task
def queue_activities(now: datetime) -> int:
    """Queue the touches and completed tasks of the last week not yet logged in the CRM."""
    settings = Settings()
    connector = _connector(settings)
    with database(settings).begin() as conn:
        return queue_new_activities(conn, connector.name, now)


@crm_task
def push(now: datetime, rounds: int = 50) -> dict[str, int]:
    """Drain the outbox: up to ``rounds`` batches of ``crm.batch_size`` rows."""
    settings = Settings()
    connector = _connector(settings)
    total: dict[str, int] = {"pushed": 0, "retrying": 0, "failed": 0}
    try:
        for _ in range(rounds):
            report = drain_outbox(
                database(settings),
                connector,
                now,
                limit=settings.crm.batch_size,
                max_attempts=settings.crm.max_attempts,
            )
            for k, v in report.as_dict().items():
                total[k] += v
            if sum(report.as_dict().values()) < settings.crm.batch_size:
                break
    finally:
        connector.close()
    return total


@crm_task
def pull(now: datetime) -> dict[str, int]:
    """Apply meetings booked, deals created and owner changes since the last pull."""
    settings = Settings()
    connector = _connector(settings)
    try:
        return pull_changes(
            database(settings),
            connector,
            runtimes(settings),
            now,
            owner_change_pause=timedelta(days=settings.crm.owner_change_pause_days),
        ).as_dict()
    finally:
        connector.close()


@flow(name="sync_crm", log_prints=True, persist_result=False)
def sync_crm(now: datetime | None = None) -> dict[str, dict[str, int] | int]:
    """One sync: queue new activities, push the outbox, pull changes."""
    settings = Settings()
    if settings.crm.provider == "none":
        print("no CRM configured (TOUCHFLOW_CRM__PROVIDER)")
        return {}
    at = now or datetime.now(UTC)
    queued = queue_activities(at)
    return {"queued": queued, "push": push(at), "pull": pull(at)}


if __name__ == "__main__":
    print(sync_crm())
