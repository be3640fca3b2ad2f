"""``snapshot_pipeline``: record every open deal as it stands today.

Scheduled daily (``prefect.yaml``), after the night's deal sync. The snapshot
gives the forecast's backtest a history of amounts, close dates and stages even
where the CRM keeps none. Idempotent per date: a rerun replaces the day's rows
(:func:`touchflow.services.deals.take_snapshot`).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import batch_task, flow_log, log_summary
from touchflow.services.deals import take_snapshot
from touchflow.services.forecasting import refresh_stored_forecast


@batch_task(retry_delay_seconds=60)
def snapshot_open_deals(day: date) -> int:
    """Write the day's snapshot; the number of open deals recorded."""
    return take_snapshot(bootstrap.database(bootstrap.load_settings()), day)


@batch_task(retry_delay_seconds=60)
def store_forecast() -> bool:
    """The dashboard's forecast of everyone's deals, computed and stored for today
    (services/forecasting.py): the first page view of the day finds it ready."""
    settings = bootstrap.load_settings()
    if not (settings.config_dir / "pipeline.yaml").exists():
        return False
    return refresh_stored_forecast(
        bootstrap.database(settings), bootstrap.pipeline(settings), datetime.now(UTC)
    )


@flow(name="snapshot_pipeline", log_prints=True, persist_result=False)
def snapshot_pipeline(day: date | None = None) -> dict[str, int]:
    """Snapshot the open pipeline under ``day`` (default: today, UTC)."""
    started, log = time.perf_counter(), flow_log()
    bootstrap.checked_settings("worker", log=log.warning)
    result = {"deals": snapshot_open_deals(day or datetime.now(UTC).date())}
    result["forecast_computed"] = int(store_forecast())
    log_summary(log, "snapshot_pipeline", result, started)
    return result


if __name__ == "__main__":
    print(snapshot_pipeline())
