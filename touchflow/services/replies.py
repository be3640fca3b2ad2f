"""Replies from reps' mailboxes: read, classify, apply, then mark handled.

One call works one mailbox (never one message per call): fetch new messages,
classify each (reply, out of office, unsubscribe request, auto-reply,
bounce), apply it in the store, then mark the handled ones processed. A crash
between applying and marking is harmless: messages are deduplicated on their
Message-ID, so the next poll changes nothing for them.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from sqlalchemy import Engine

from touchflow.domain.replies import classify
from touchflow.ports import MailboxReader
from touchflow.services.inbound_messages import apply_inbound_message
from touchflow.store.cadence_versions import RuntimeCache

__all__ = ["poll_mailbox"]

log = logging.getLogger(__name__)


def poll_mailbox(
    mailbox: MailboxReader,
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
