"""``sync_deals``: pull the CRM's deals, their stage history and contact roles.

Scheduled (``prefect.yaml``: every 15 minutes). One task runs the whole pull,
page by page, in :func:`touchflow.services.deals.sync_deals`: a page is one
transaction and the cursor is saved with it, so a crashed run resumes where it
stopped and a page read twice changes nothing.
"""

from __future__ import annotations

import time
from contextlib import closing
from datetime import UTC, datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import batch_task, flow_log, log_summary
from touchflow.services.deals import sync_deals as sync_deals_service


@batch_task(retry_delay_seconds=30)
def pull_deals(now: datetime) -> dict[str, int]:
    """Every page of deals changed since the last sync."""
    settings = bootstrap.load_settings()
    pipeline = bootstrap.pipeline(settings)
    source = bootstrap.deal_source(settings)
    with closing(source):  # type: ignore[type-var]
        report = sync_deals_service(bootstrap.database(settings), source, pipeline, now)
    d = report.deals
    return {"pages": report.pages, "new": d.new, "updated": d.updated,
            "stage_changes": report.stage_changes + d.stage_changes,
            "contacts": report.contacts}  # fmt: skip


@flow(name="sync_deals", log_prints=True, persist_result=False)
def sync_deals(now: datetime | None = None) -> dict[str, int]:
    """One pull of the CRM's deals."""
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    if settings.crm.provider == "none":
        log.info("no CRM configured (TOUCHFLOW_CRM__PROVIDER)")
        return {}
    result = pull_deals(now or datetime.now(UTC))
    log_summary(log, "sync_deals", result, started)
    return result


if __name__ == "__main__":
    print(sync_deals())
