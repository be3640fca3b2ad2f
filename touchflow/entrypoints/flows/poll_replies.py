"""``poll_replies``: read reps' mailboxes over IMAP and let replies steer cadences.

One task per mailbox (never one per message); the work is
:func:`touchflow.services.replies.poll_mailbox`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from prefect import flow

from touchflow import bootstrap
from touchflow.entrypoints.flows.tasks import batch_task


@batch_task(retry_delay_seconds=5)
def poll_one(index: int, now: datetime) -> dict[str, int]:
    """Poll the ``index``-th configured mailbox (settings are re-read on the worker)."""
    settings = bootstrap.load_settings()
    poll = bootstrap.reply_poll(settings)
    with bootstrap.mailbox(settings.replies.mailboxes[index]) as mailbox:
        return dict(poll(mailbox, now=now))


@flow(name="poll_replies", log_prints=True, persist_result=False)
def poll_replies(now: datetime | None = None) -> dict[str, int]:
    """Poll every configured mailbox once; totals by outcome."""
    settings = bootstrap.checked_settings("worker", log=print)
    at = now or datetime.now(UTC)
    total: Counter[str] = Counter()
    for i, cfg in enumerate(settings.replies.mailboxes):
        counts = poll_one.with_options(name=f"poll {cfg.username}")(i, at)
        total.update(counts)
    if not settings.replies.mailboxes:
        print("no mailboxes configured (TOUCHFLOW_REPLIES__MAILBOXES)")
    return dict(total)


if __name__ == "__main__":
    print(poll_replies())
