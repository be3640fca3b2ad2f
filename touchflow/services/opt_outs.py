"""Opt-outs: STOP / START on a phone number, and one-click unsubscribe of a prospect.

An SMS opt-out is a ``phone`` suppression with reason ``sms_stop``: texts to
that number stop on every cadence; email and the enrollments go on.

A one-click unsubscribe opts the prospect out of everything for good (the
``unsubscribe`` exit event), once, however often the link is clicked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from touchflow.domain.phones import e164_or_raw
from touchflow.services.event_log import ID_MAX, SOURCE_MAX, column_safe, event_key
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import apply_exit_event
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import enrollments, events, prospects, suppressions, touches
from touchflow.store.suppressions import add_suppression

__all__ = ["sms_opt_in", "sms_opt_out", "unsubscribe_touch"]


# -- SMS keywords and opt-outs ---------------------------------------------------


def sms_opt_out(conn: Connection, phone: str, now: datetime, *, source: str) -> None:
    """Stop texts to ``phone`` on every cadence (a ``phone`` suppression, reason ``sms_stop``).

    Email and the enrollments themselves go on. Idempotent.
    """
    value = e164_or_raw(phone)
    add_suppression(conn, "phone", value, reason="sms_stop", source=source[:SOURCE_MAX], now=now)


def sms_opt_in(conn: Connection, phone: str, now: datetime, *, source: str) -> bool:
    """Undo :func:`sms_opt_out` (START, YES, UNSTOP); True if the number was opted out.

    Only an ``sms_stop`` suppression is lifted: a number suppressed for another
    reason (manually, do-not-call) stays suppressed.
    """
    result = conn.execute(
        delete(suppressions).where(
            suppressions.c.kind == "phone",
            suppressions.c.value == e164_or_raw(phone).lower(),
            suppressions.c.reason == "sms_stop",
        )
    )
    return bool(result.rowcount)


# -- one-click unsubscribe -------------------------------------------------------


def unsubscribe_touch(
    conn: Connection,
    runtimes: RuntimeCache,
    touch_key: str,
    now: datetime,
    *,
    source: str = "unsubscribe_link",
) -> bool:
    """Opt out the prospect a touch went to (every cadence, for good); False if no such touch.

    Idempotent: a second click (or a mail client's one-click POST after the
    person clicked the link) finds the prospect opted out and changes nothing.
    """
    key = column_safe(touch_key, ID_MAX)
    if key is None:
        return False
    row = conn.execute(
        select(touches.c.enrollment_id, enrollments.c.prospect_id, prospects.c.opted_out_at)
        .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
        .join(prospects, prospects.c.id == enrollments.c.prospect_id)
        .where(touches.c.key == key)
    ).first()
    if row is None:
        return False
    if row.opted_out_at is not None:
        return True
    stmt = (
        dialect_insert(conn, events)
        .values(
            provider_event_id=event_key(f"unsubscribe:{key}"),
            prospect_id=row.prospect_id,
            enrollment_id=row.enrollment_id,
            touch_key=key,
            type="unsubscribe",
            occurred_at=now,
            source=source[:SOURCE_MAX],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(events.c.id)
    )
    if conn.execute(stmt).scalar() is not None:
        apply_exit_event(
            conn,
            runtimes,
            row.prospect_id,
            "unsubscribe",
            now,
            source=source[:SOURCE_MAX],
            touch_key=key,
            record=False,
        )
    return True
