"""What every touchflow flow shares: its task options and its one-line run summary.

Logging: pyproject keeps Prefect at WARNING, since at INFO every task run (one
per batch) logs its start and end, and the CLI's local runs would print them
all. A flow run's own lines are few and are what an operator reads in the UI,
so :func:`flow_log` lets INFO through for flow runs (``prefect.flow_runs``)
only: the summary (:func:`log_summary`), the flow's prints, and the engine's
start and end lines. Set ``PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL=WARNING``
to silence them again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from touchflow.errors import RetryableError
from touchflow.services.database import transient_error


def retry_only_retryable(task_: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: errors that can pass, and only those.

    A provider's timeout, 5xx or 429 (:class:`RetryableError`); a database
    connection lost, a serialization failure or deadlock, SQLite's "database
    is locked". Never a missing table or column, a refused password or a bug:
    those fail the same way on every try, so the run fails at once and says why.
    """
    try:
        state.result()
    except RetryableError:
        return True
    except Exception as exc:
        return transient_error(exc)
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


#: Prefect's logger of flow runs (task runs log to ``prefect.task_runs``).
FLOW_RUN_LOGGER = "prefect.flow_runs"


def flow_log() -> Any:
    """This flow run's logger (call it inside a flow), with INFO let through.

    Only when nobody set a level for flow runs: an explicit
    ``PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL`` is left as it is.
    """
    base = logging.getLogger(FLOW_RUN_LOGGER)
    if base.level == logging.NOTSET and base.getEffectiveLevel() > logging.INFO:
        base.setLevel(logging.INFO)
    return get_run_logger()


def summary_line(flow_name: str, counts: Mapping[str, Any], seconds: float) -> str:
    """``run_cadences: claimed 1200, sent 1150, capped 50 in 4.2 s``: the non-zero counts.

    Nested counts (a flow of stages) are named ``stage.count``.
    """
    parts = [f"{name} {n}" for name, n in _flat(counts) if n]
    return f"{flow_name}: {', '.join(parts) or 'nothing to do'} in {seconds:.1f} s"


def _flat(counts: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, value in counts.items():
        if isinstance(value, Mapping):
            out += _flat(value, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", value))
    return out


def log_summary(log: Any, flow_name: str, counts: Mapping[str, Any], started: float) -> None:
    """One INFO line in the flow run's log: what the run did and how long it took.

    ``started`` is a :func:`time.perf_counter` reading taken at the flow's start.
    """
    log.info(summary_line(flow_name, counts, time.perf_counter() - started))
