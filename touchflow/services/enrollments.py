"""Enrollments by hand: enroll prospects, record an exit event, retry failed enrollments.

What ``touchflow enroll``, ``touchflow event`` and ``touchflow retry`` do, each
in one transaction. The tick moves enrollments on by itself
(:mod:`touchflow.services.tick`); these are the operator's levers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from touchflow.domain.engine import CadenceRuntime, SenderInfo
from touchflow.domain.prospects import normalize_email
from touchflow.services.account_replies import DEFAULT_ACCOUNT_PAUSE_DAYS, ReplyResult, apply_reply
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import Retried, apply_exit_event, enroll, retry_enrollments
from touchflow.store.prospects import find_prospect_id
from touchflow.store.schema import prospects

__all__ = [
    "EnrollReport",
    "ReplyResult",
    "Retried",
    "enroll_prospects",
    "record_exit_event",
    "retry_failed",
]


@dataclass(frozen=True)
class EnrollReport:
    """What enrolling did: enrolled, left as they were, refused, and emails not in the store."""

    enrolled: int
    already: int  # already enrolled in this cadence
    suppressed: int  # opted out, bounced or suppressed
    outside_audience: int  # refused by the cadence's `audience:` (score, grade)
    not_imported: int = 0  # distinct emails given that are not imported yet


def enroll_prospects(
    engine: Engine,
    runtime: CadenceRuntime,
    emails: Sequence[str] | None,
    *,
    owner_email: str,
    sender: SenderInfo,
    now: datetime,
) -> EnrollReport:
    """Enroll the stored prospects with these (normalized) ``emails``, or all when None.

    Pinned to the cadence's current version (stored with them). Emails that
    are not imported yet are counted in ``not_imported``, not enrolled.
    """
    with engine.begin() as conn:
        ids: list[int] | None = None
        missing = 0
        if emails is not None:
            ids = list(
                conn.execute(
                    select(prospects.c.id).where(prospects.c.email.in_(list(emails)))
                ).scalars()
            )
            missing = max(len(set(emails)) - len(ids), 0)
        result = enroll(conn, runtime, ids, owner_email=owner_email, sender=sender, now=now)
    return EnrollReport(
        result.enrolled, result.already, result.suppressed, result.outside_audience, missing
    )


def record_exit_event(
    engine: Engine,
    runtimes: RuntimeCache,
    email: str,
    kind: str,
    at: datetime,
    *,
    source: str,
    account_pause_days: int = DEFAULT_ACCOUNT_PAUSE_DAYS,
) -> ReplyResult | None:
    """Record a reply, bounce, unsubscribe or booked meeting for the prospect at ``email``.

    Ends the enrollments the event ends (:func:`touchflow.store.enrollments.apply_exit_event`);
    a reply is :func:`~touchflow.services.account_replies.apply_reply`, as from a
    mailbox or a webhook, so the colleagues' ``on_account_reply`` applies too.
    None when no prospect has that address (nothing is written).
    """
    with engine.begin() as conn:
        pid = find_prospect_id(conn, normalize_email(email))
        if pid is None:
            return None
        if kind == "reply":
            return apply_reply(
                conn, runtimes, pid, at, source=source, account_pause_days=account_pause_days
            )
        res = apply_exit_event(conn, runtimes, pid, kind, at, source=source)
        return ReplyResult(res.ended, res.kept)


def retry_failed(
    engine: Engine, ids: Sequence[int] | None, now: datetime, *, force: bool = False
) -> Retried:
    """Requeue failed enrollments (every failed one when ``ids`` is None).

    Their step runs again at the next tick, under the next attempt's key. One
    whose touch is ``unknown`` (it may have been delivered) is left as it is
    and reported, unless ``force``: the operator checked it did not arrive.
    """
    with engine.begin() as conn:
        return retry_enrollments(conn, ids, now, force=force)
