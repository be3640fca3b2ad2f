"""The live guidance's cards and checklist ticks per call (``call_cards``).

A row is written once per ``(call_sid, key)`` (see the table's comment in
:mod:`touchflow.store.schema`): :func:`record_card` says whether it was new, so a
card fired twice (a redelivered segment, a second serve process rebuilding the
call) is stored and shown once. ``id`` orders the rows and is the high-water mark
:func:`cards_after` reads from (the live poller of every serve process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from touchflow.store.prebuilt import dialect_insert, per_dialect
from touchflow.store.schema import call_cards, call_transcripts, tasks

__all__ = [
    "CallCardRow",
    "LiveCallRow",
    "call_owner",
    "calls_of_task",
    "cards_after",
    "cards_of",
    "last_card_id",
    "live_calls",
    "record_card",
    "record_cards",
]


@dataclass(frozen=True)
class CallCardRow:
    id: int
    call_sid: str
    key: str
    kind: str  # card|checklist
    tracker: str
    data: dict[str, Any]
    at: datetime
    origin: str
    owner: str | None = None


@dataclass(frozen=True)
class LiveCallRow:
    call_sid: str
    task_id: int | None
    owner: str | None
    title: str | None
    status: str
    started_at: datetime
    cards: int


def record_card(
    conn: Connection,
    call_sid: str,
    key: str,
    kind: str,
    tracker: str,
    data: dict[str, Any],
    at: datetime,
    origin: str,
) -> int | None:
    """Store one card or tick; its id when it is new, None when the key was there."""
    stmt = (
        dialect_insert(conn, call_cards)
        .values(
            call_sid=call_sid, key=key, kind=kind, tracker=tracker, data=data, at=at, origin=origin
        )
        .on_conflict_do_nothing(index_elements=["call_sid", "key"])
        .returning(call_cards.c.id)
    )
    row = conn.execute(stmt).first()
    return None if row is None else int(row[0])


@per_dialect
def _insert_cards(insert: Any) -> Any:
    return insert(call_cards).on_conflict_do_nothing(index_elements=["call_sid", "key"])


def record_cards(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store many cards and ticks at once (``record_card``'s columns), each key once.

    For the group-commit writer: the cards were shown when they fired; a key already
    stored (a second process, a replay) is left as it is.
    """
    if rows:
        conn.execute(_insert_cards(conn), list(rows))


def _row(r: Any, owner: str | None = None) -> CallCardRow:
    return CallCardRow(r.id, r.call_sid, r.key, r.kind, r.tracker, r.data, r.at, r.origin, owner)


def cards_of(conn: Connection, call_sid: str) -> list[CallCardRow]:
    """A call's cards and ticks, in the order they fired."""
    rows = conn.execute(
        select(call_cards).where(call_cards.c.call_sid == call_sid).order_by(call_cards.c.id)
    )
    return [_row(r) for r in rows]


def last_card_id(conn: Connection) -> int:
    """The newest row's id (0: none): where a poller starts."""
    return int(conn.execute(select(func.coalesce(func.max(call_cards.c.id), 0))).scalar_one())


def cards_after(conn: Connection, mark: int, limit: int = 500) -> list[CallCardRow]:
    """Rows after ``mark`` in id order, with the owner of their call's task."""
    rows = conn.execute(
        select(call_cards, tasks.c.owner_email)
        .join(call_transcripts, call_transcripts.c.call_sid == call_cards.c.call_sid)
        .outerjoin(tasks, tasks.c.id == call_transcripts.c.task_id)
        .where(call_cards.c.id > mark)
        .order_by(call_cards.c.id)
        .limit(limit)
    )
    return [_row(r, r.owner_email) for r in rows]


def call_owner(conn: Connection, call_sid: str) -> tuple[bool, str | None]:
    """(whether the call is known, the owner of its task: None when it has none)."""
    row = conn.execute(
        select(call_transcripts.c.call_sid, tasks.c.owner_email)
        .outerjoin(tasks, tasks.c.id == call_transcripts.c.task_id)
        .where(call_transcripts.c.call_sid == call_sid)
    ).first()
    if row is None:
        return False, None
    return True, row.owner_email


def live_calls(
    conn: Connection, owners: Sequence[str] | None, *, since: datetime, limit: int = 200
) -> list[LiveCallRow]:
    """Calls still live (started after ``since``), newest first; ``owners`` None: everyone's."""
    n_cards = (
        select(func.count())
        .where(call_cards.c.call_sid == call_transcripts.c.call_sid, call_cards.c.kind == "card")
        .scalar_subquery()
    )
    q = (
        select(
            call_transcripts.c.call_sid,
            call_transcripts.c.task_id,
            call_transcripts.c.status,
            call_transcripts.c.started_at,
            tasks.c.owner_email,
            tasks.c.title,
            n_cards.label("cards"),
        )
        .outerjoin(tasks, tasks.c.id == call_transcripts.c.task_id)
        .where(call_transcripts.c.status == "live", call_transcripts.c.started_at >= since)
        .order_by(call_transcripts.c.started_at.desc())
        .limit(limit)
    )
    if owners is not None:
        q = q.where(tasks.c.owner_email.in_(list(owners)))
    return [
        LiveCallRow(r.call_sid, r.task_id, r.owner_email, r.title, r.status, r.started_at, r.cards)
        for r in conn.execute(q)
    ]


def calls_of_task(conn: Connection, task_id: int) -> list[tuple[str, str]]:
    """The task's transcribed calls, oldest first: (call_sid, live|ended)."""
    rows = conn.execute(
        select(call_transcripts.c.call_sid, call_transcripts.c.status)
        .where(call_transcripts.c.task_id == task_id)
        .order_by(call_transcripts.c.started_at)
    )
    return [(r.call_sid, r.status) for r in rows]
