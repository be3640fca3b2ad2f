"""``poll_replies``: read reps' mailboxes over IMAP and let replies steer cadences.

One task per mailbox (never one per message); the work is
:func:`touchflow.services.replies.poll_mailbox`.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import batch_task, flow_log, log_summary
from touchflow.errors import ConfigError

NO_MAILBOXES = (
    "no mailboxes configured (TOUCHFLOW_REPLIES__MAILBOXES, or mailbox.imap in config/team.yaml)"
)


@batch_task(retry_delay_seconds=5)
def poll_one(index: int, now: datetime) -> dict[str, int]:
    """Poll the ``index``-th mailbox of :func:`bootstrap.reply_mailboxes` (re-read on the worker).

    A mailbox whose password is not set answers ``{"config_errors": 1}`` and
    says why, so the other mailboxes are still polled.
    """
    settings = bootstrap.load_settings()
    poll = bootstrap.reply_poll(settings)
    box = bootstrap.reply_mailboxes(settings)[index]
    try:
        opened = box.open()
    except ConfigError as exc:
        print(f"not polled: {box.label}: {exc}")
        return {"config_errors": 1}
    with opened as mailbox:
        return dict(poll(mailbox, now=now))


@flow(name="poll_replies", log_prints=True, persist_result=False)
def poll_replies(now: datetime | None = None) -> dict[str, int]:
    """Poll every configured mailbox once (the environment's and team.yaml's); totals."""
    started, log = time.perf_counter(), flow_log()
    settings = bootstrap.checked_settings("worker", log=log.warning)
    at = now or datetime.now(UTC)
    total: Counter[str] = Counter()
    boxes = bootstrap.reply_mailboxes(settings)
    for i, box in enumerate(boxes):
        counts = poll_one.with_options(name=f"poll {box.label}")(i, at)
        total.update(counts)
    if not boxes:
        log.info(NO_MAILBOXES)
    log_summary(log, "poll_replies", {"mailboxes": len(boxes), **total}, started)
    return dict(total)


if __name__ == "__main__":
    print(poll_replies())
