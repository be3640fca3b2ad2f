"""The Prefect task options every touchflow flow shares."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import OperationalError

from touchflow.errors import RetryableError


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
