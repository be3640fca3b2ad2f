"""``summarise_calls``: the after-call summaries that the stop event did not bring.

Scheduled every 10 minutes (``prefect.yaml``). A call is summarised when its
transcript stops (in the ``serve`` process); this sweep catches the rest in one
batch, never one Prefect task per call: ended calls without a summary (a summary
that failed) and live calls silent for ``TOUCHFLOW_TRANSCRIPTS__SUMMARY_IDLE_MINUTES``
(dropped without a stop). The work is :meth:`touchflow.services.call_summaries.
CallSummaries.sweep`; rerunning it is safe (a call has one summary, its score events
are keyed on the call).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import flow_log, log_summary
from touchflow.settings import Settings


def sweep(settings: Settings, now: datetime, limit: int = 500) -> dict[str, int]:
    """The flow's work, without the engine: calls summarised and failed."""
    summaries = bootstrap.call_summaries(settings)
    if summaries is None:
        return {"summarised": 0, "failed": 0, "no_guidance": 1}
    report = summaries.sweep(now, limit=limit)
    return {"summarised": len(report.summarised), "failed": len(report.failed)}


@flow(name="summarise_calls", log_prints=True, persist_result=False)
def summarise_calls(now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Summarise up to ``limit`` calls that ended without a summary or went quiet."""
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    result = sweep(settings, now or datetime.now(UTC), limit)
    log_summary(log, "summarise_calls", result, started)
    return result


if __name__ == "__main__":
    summarise_calls()
