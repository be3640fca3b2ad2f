"""Click-to-call: an SDR starts a call task's call; the provider rings the SDR, then the prospect.

:func:`place_call` checks everything that must hold before a phone rings and
refuses with a :class:`~touchflow.errors.CallRefused` that says why:

``TaskNotFound`` (no task with that id), ``CallNotPossible`` (never for this
task as it is: not a call task, no phone or no known time zone) or
``CallNotAllowed`` (not now: the task is closed, the person opted out or the
number is suppressed, it is outside 08:00-21:00 in the prospect's time zone),
all in :mod:`touchflow.errors`.

As every provider call, the dial happens outside any transaction (the
tick's ledger rule): the checks and a ``call_requested`` event commit first,
then the :class:`~touchflow.ports.Dialer` is called, then its outcome is
recorded in a second transaction: ``call_started`` with the call's id (a
Twilio Call SID) against the task's touch, or ``call_failed`` with the error.
A failed dial leaves the task open: it can be called again.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, select

from touchflow.domain.calendar import country_timezone
from touchflow.domain.compliance import within_contact_hours
from touchflow.errors import (
    CallNotAllowed,
    CallNotPossible,
    ConnectorError,
    TaskNotFound,
)
from touchflow.ports import Dialer
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import enrollments, events, prospects, suppressions, tasks


def _task_row(conn: Connection, task_id: int) -> Any:
    return conn.execute(
        select(
            tasks.c.id,
            tasks.c.touch_key,
            tasks.c.enrollment_id,
            tasks.c.channel,
            tasks.c.status,
            enrollments.c.prospect_id,
            prospects.c.email,
            prospects.c.phone,
            prospects.c.timezone,
            prospects.c.country,
            prospects.c.opted_out_at,
        )
        .join(enrollments, enrollments.c.id == tasks.c.enrollment_id)
        .join(prospects, prospects.c.id == enrollments.c.prospect_id)
        .where(tasks.c.id == task_id)
    ).first()


def _phone_suppression(conn: Connection, phone: str) -> str | None:
    return conn.execute(
        select(suppressions.c.reason).where(
            suppressions.c.kind == "phone", suppressions.c.value == phone.lower()
        )
    ).scalar()


def _timezone(row: Any) -> str:
    tz = row.timezone or (country_timezone(row.country) if row.country else None)
    if not tz:
        raise CallNotPossible(
            f"no time zone for {row.email}: set the prospect's timezone or country "
            "so contact hours can be checked"
        )
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CallNotPossible(f"unknown time zone {tz!r} for {row.email}") from None
    return tz


def check_call(conn: Connection, task_id: int, now: datetime) -> Any:
    """The task's row when its call may be placed now; else a ``CallRefused`` saying why."""
    row = _task_row(conn, task_id)
    if row is None:
        raise TaskNotFound(f"task {task_id} does not exist")
    if row.channel != "call":
        raise CallNotPossible(f"task {task_id} is a {row.channel} task, not a call")
    if row.status != "open":
        raise CallNotAllowed(f"task {task_id} is {row.status}, not open")
    if not row.phone:
        raise CallNotPossible(f"{row.email} has no phone number")
    if row.opted_out_at is not None:
        raise CallNotAllowed(f"{row.email} opted out of all contact")
    reason = _phone_suppression(conn, row.phone)
    if reason is not None:
        raise CallNotAllowed(f"{row.phone} is suppressed ({reason})")
    tz = _timezone(row)
    if not within_contact_hours(now, tz):
        local = now.astimezone(ZoneInfo(tz))
        raise CallNotAllowed(
            f"it is {local:%H:%M} in {tz} for {row.email}: "
            "calls only between 08:00 and 21:00 in the prospect's time zone"
        )
    return row


def place_call(
    engine: Engine,
    dialer: Dialer,
    task_id: int,
    *,
    agent_number: str,
    from_number: str,
    twiml_url: str,
    status_callback_url: str | None,
    now: datetime,
) -> str:
    """Place the call of an open call task; return the call id.

    Check and record (one transaction), dial (no transaction open), record the
    outcome (a second one). Raises a :class:`~touchflow.errors.CallRefused` instead of ringing
    anyone when a check fails; a connector error from the dialer is recorded
    as ``call_failed`` and raised unchanged.
    """
    request_id = secrets.token_hex(8)
    payload: dict[str, Any] = {
        "task_id": task_id,
        "agent_number": agent_number,
        "request_id": request_id,
    }
    with engine.begin() as conn:
        row = check_call(conn, task_id, now)
        _record(conn, row, f"call-request:{request_id}", "call_requested", now, payload)
    try:
        sid = dialer.place_call(
            agent_number=agent_number,
            from_number=from_number,
            twiml_url=twiml_url,
            status_callback_url=status_callback_url,
        )
    except ConnectorError as exc:
        with engine.begin() as conn:
            failed = {**payload, "error": str(exc)}
            _record(conn, row, f"call-failed:{request_id}", "call_failed", now, failed)
        raise
    with engine.begin() as conn:
        _record(conn, row, f"call:{sid}", "call_started", now, {**payload, "call_sid": sid})
    return sid


def _record(
    conn: Connection, row: Any, event_id: str, kind: str, now: datetime, payload: dict[str, Any]
) -> None:
    conn.execute(
        dialect_insert(conn, events)
        .values(
            provider_event_id=event_id[:200],
            prospect_id=row.prospect_id,
            enrollment_id=row.enrollment_id,
            touch_key=row.touch_key,
            type=kind,
            occurred_at=now,
            source="click_to_call",
            payload=payload,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
    )


def call_target(conn: Connection, task_id: int) -> str | None:
    """The number to bridge a task's call to, or None if it must not be dialed (any more)."""
    row = _task_row(conn, task_id)
    if row is None or row.channel != "call" or not row.phone or row.opted_out_at is not None:
        return None
    if _phone_suppression(conn, row.phone) is not None:
        return None
    return str(row.phone)


def task_touch_key(conn: Connection, task_id: int) -> str | None:
    """The touch key of a task (call status callbacks are matched to the touch with it)."""
    return conn.execute(select(tasks.c.touch_key).where(tasks.c.id == task_id)).scalar()


def call_country(conn: Connection, task_id: int) -> str | None:
    """The ISO country of the prospect a task's call is to (consent is decided by it)."""
    row = _task_row(conn, task_id)
    return str(row.country).upper() if row is not None and row.country else None
