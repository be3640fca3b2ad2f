"""``poll_replies``: read reps' mailboxes over IMAP and let replies steer cadences.

One task per mailbox (never one per message): fetch unseen messages, classify
each (reply, out of office, unsubscribe request, auto-reply, bounce), apply it
in the store, then move the handled messages to the processed folder. A crash
between applying and moving is harmless: messages are deduplicated on their
Message-ID, so the next poll changes nothing for them.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

from prefect import flow
from sqlalchemy import Engine

from touchflow.adapters.imap.replies import ImapMailbox
from touchflow.bootstrap import database, runtimes
from touchflow.domain.replies import classify
from touchflow.entrypoints.flows.run_cadences import batch_task
from touchflow.services.inbound import apply_inbound_message
from touchflow.settings import ImapMailboxSettings, Settings
from touchflow.store.repo import RuntimeCache

log = logging.getLogger(__name__)


def mailbox_from(cfg: ImapMailboxSettings) -> ImapMailbox:
    """An :class:`ImapMailbox` from its settings."""
    return ImapMailbox(
        cfg.host,
        cfg.port,
        cfg.username,
        cfg.password.get_secret_value(),
        ssl=cfg.ssl,
        starttls=cfg.starttls,
        folder=cfg.folder,
        processed_folder=cfg.processed_folder,
    )


def poll_mailbox(
    mailbox: ImapMailbox,
    engine: Engine,
    cache: RuntimeCache,
    *,
    now: datetime,
    limit: int = 500,
    ooo_default_days: int = 7,
    account_pause_days: int = 14,
) -> Counter[str]:
    """Handle up to ``limit`` new messages of one mailbox; counts by outcome.

    Keys: the classification kinds (``reply``, ``out_of_office``, ...),
    ``unmatched`` (no touch or prospect found), ``duplicate`` and ``errors``
    (left in the mailbox for the next poll).
    """
    counts: Counter[str] = Counter()
    fetched = mailbox.fetch_new(limit)
    done: list[int] = []
    source = f"imap:{mailbox.username}"
    with engine.begin() as conn:
        for item in fetched:
            try:
                with conn.begin_nested():
                    outcome = apply_inbound_message(
                        conn,
                        cache,
                        item.message,
                        classify(item.message),
                        now,
                        source=source,
                        ooo_default_days=ooo_default_days,
                        account_pause_days=account_pause_days,
                    )
            except Exception:
                # One bad message must not block the mailbox: it stays unseen
                # in the folder and is tried again at the next poll.
                log.exception("reply %s in %s failed", item.message.message_id, source)
                counts["errors"] += 1
                continue
            done.append(item.uid)
            if outcome.duplicate:
                counts["duplicate"] += 1
            elif not outcome.matched:
                counts["unmatched"] += 1
            else:
                counts[outcome.kind] += 1
    if done:
        mailbox.mark_processed(done)
    return counts


@batch_task(retry_delay_seconds=5)
def poll_one(index: int, now: datetime) -> dict[str, int]:
    """Poll the ``index``-th configured mailbox (settings are re-read on the worker)."""
    settings = Settings()
    cfg = settings.replies.mailboxes[index]
    with mailbox_from(cfg) as mailbox:
        counts = poll_mailbox(
            mailbox,
            database(settings),
            runtimes(settings),
            now=now,
            limit=settings.replies.poll_limit,
            ooo_default_days=settings.replies.ooo_default_days,
            account_pause_days=settings.replies.account_pause_days,
        )
    return dict(counts)


@flow(name="poll_replies", log_prints=True, persist_result=False)
def poll_replies(now: datetime | None = None) -> dict[str, int]:
    """Poll every configured mailbox once; totals by outcome."""
    settings = Settings()
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
