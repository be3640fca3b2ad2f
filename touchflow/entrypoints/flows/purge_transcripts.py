"""``purge_transcripts``: delete call transcripts past their retention.

Scheduled daily (``prefect.yaml``). Retention is ``retention_days`` in
``config/calls.yaml`` (30 days when the file is absent); the work is
:func:`touchflow.services.call_transcripts.purge_old_transcripts`, one
transaction, safe to rerun (a second run deletes nothing more).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import flow_log, log_summary
from touchflow.services.call_transcripts import purge_old_transcripts
from touchflow.settings import Settings


def purge(settings: Settings, now: datetime, older_than_days: int | None = None) -> dict[str, int]:
    """The flow's work, without the engine: what was deleted, and the retention applied."""
    days = (
        older_than_days
        if older_than_days is not None
        else bootstrap.calls_config(settings).retention_days
    )
    calls, segments = purge_old_transcripts(bootstrap.database(settings), now, days)
    return {"calls": calls, "segments": segments, "retention_days": days}


@flow(name="purge_transcripts", log_prints=True, persist_result=False)
def purge_transcripts(
    now: datetime | None = None, older_than_days: int | None = None
) -> dict[str, int]:
    """Delete transcripts older than ``older_than_days`` (default: the consent config's)."""
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    result = purge(settings, now or datetime.now(UTC), older_than_days)
    log_summary(log, "purge_transcripts", result, started)
    return result


if __name__ == "__main__":
    purge_transcripts()
