"""Replies from reps' mailboxes: read, classify, apply, then mark handled.

One call works one mailbox (never one message per call): fetch new messages,
classify each (reply, out of office, unsubscribe request, auto-reply,
bounce), apply it in the store, then mark the handled ones processed. A crash
between applying and marking is harmless: messages are deduplicated on their
Message-ID, so the next poll changes nothing for them.

A mailbox that can show its Sent folder (:class:`~touchflow.ports.SentFolder`,
IMAP) also settles touches left ``unknown`` by a crash or a lost SMTP reply:
:func:`reconcile_sent` looks their Message-IDs up there, and every poll does
it (one indexed query when nothing is ``unknown``).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from sqlalchemy import Engine

from touchflow.domain.replies import classify
from touchflow.errors import ConnectorError
from touchflow.ports import MailboxReader, SentFolder
from touchflow.services.inbound_messages import apply_inbound_message
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import reconcile_delivered, unknown_email_touches

__all__ = ["poll_mailbox", "reconcile_sent"]

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
    (left in the mailbox for the next poll); ``reconciled``: ``unknown``
    touches found in this mailbox's Sent folder (see :func:`reconcile_sent`).
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
    if isinstance(mailbox, SentFolder):
        try:
            counts["reconciled"] += reconcile_sent(mailbox, engine, cache, now=now)
        except ConnectorError as exc:  # the replies were handled; this can wait
            log.warning("sent folder of %s not searched: %s", source, exc)
        if not counts["reconciled"]:
            del counts["reconciled"]
    return counts


def reconcile_sent(
    mailbox: SentFolder, engine: Engine, cache: RuntimeCache, *, now: datetime, limit: int = 5000
) -> int:
    """Mark ``unknown`` email touches whose message is in ``mailbox``'s Sent folder as ``sent``.

    A touch is ``unknown`` when the SMTP server may have accepted it but never
    said so (the connection dropped after the data, or the worker was killed
    with the message in flight). A server that saves what it accepts to the
    Sent folder (Gmail, Microsoft 365, a mail server with save-to-sent) is
    the proof: the touch becomes ``sent`` and its enrollment moves on, as
    when a provider event reconciles it. What is not found stays ``unknown``
    for ``touchflow retry --force`` or a person. Returns how many were settled.
    Every mailbox is asked about every ``unknown`` touch: Message-IDs are
    unique, and there are few such touches (one sub-batch per crash).
    """
    with engine.connect() as conn:
        by_id = unknown_email_touches(conn, limit)
    if not by_id:
        return 0
    found = mailbox.find_sent(by_id)
    if not found:
        return 0
    with engine.begin() as conn:
        return reconcile_delivered(
            conn,
            cache,
            [by_id[m] for m in found if m in by_id],
            now,
            note="reconciled: found in the mailbox's Sent folder",
        )
