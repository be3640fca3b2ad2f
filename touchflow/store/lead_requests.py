"""The Idempotency-Key ledger of ``POST /leads`` (table ``lead_requests``).

A key's life: :func:`claim` inserts it ``processing`` (its own short
transaction, committed before the lead is processed, so another process sees
it), :func:`finish` stores the answer and marks it ``done`` in the lead's
transaction, :func:`release` deletes a claim whose request failed. The rules
(what a second request with the key gets) are the service's:
:mod:`touchflow.services.leads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, or_, select, update

from touchflow.store.prebuilt import Insert, per_dialect
from touchflow.store.schema import lead_requests

__all__ = ["KeyRow", "claim", "finish", "release"]

PROCESSING, DONE = "processing", "done"


@dataclass(frozen=True)
class KeyRow:
    """A key another request holds: its state, payload hash and answer."""

    state: str
    payload_hash: str | None
    response: dict[str, Any] | None


@per_dialect
def _claim(insert: Insert) -> Any:
    # RETURNING says whether this insert took the key: psycopg reports rowcount -1
    # for INSERT ... ON CONFLICT DO NOTHING here, so a rowcount cannot.
    return (
        insert(lead_requests)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(lead_requests.c.idempotency_key)
    )


_ROW = select(lead_requests.c.state, lead_requests.c.payload_hash, lead_requests.c.response).where(
    lead_requests.c.idempotency_key == bindparam("key")
)


def claim(
    conn: Connection,
    key: str,
    payload_hash: str,
    now: datetime,
    *,
    expired_before: datetime,
    abandoned_before: datetime,
) -> KeyRow | None:
    """Claim ``key`` for this request (None), or the row of the request that holds it.

    Keys created before ``expired_before`` are forgotten (all of them, not only
    this one, so the table does not grow forever); a ``processing`` claim older
    than ``abandoned_before`` was left by a process that died and is dropped.
    """
    conn.execute(
        delete(lead_requests).where(
            or_(
                lead_requests.c.created_at < expired_before,
                (lead_requests.c.state == PROCESSING)
                & (lead_requests.c.created_at < abandoned_before),
            )
        )
    )
    inserted = conn.execute(
        _claim(conn),
        {
            "idempotency_key": key,
            "payload_hash": payload_hash,
            "state": PROCESSING,
            "response": None,
            "created_at": now,
        },
    )
    if inserted.first() is not None:
        return None
    row = conn.execute(_ROW, {"key": key}).one_or_none()
    if row is None:  # released between our insert and this read: a retry will claim it
        return KeyRow(PROCESSING, payload_hash, None)
    return KeyRow(row.state, row.payload_hash, row.response)


def finish(
    conn: Connection,
    key: str,
    payload_hash: str | None,
    prospect_id: int,
    response: dict[str, Any],
    now: datetime,
) -> None:
    """Store the answer under ``key`` and mark it done (inserting it if it was never claimed)."""
    done = conn.execute(
        update(lead_requests)
        .where(lead_requests.c.idempotency_key == key)
        .values(state=DONE, prospect_id=prospect_id, response=response)
    )
    if done.rowcount == 0:
        conn.execute(
            _claim(conn),
            {
                "idempotency_key": key,
                "payload_hash": payload_hash,
                "state": DONE,
                "prospect_id": prospect_id,
                "response": response,
                "created_at": now,
            },
        )


def release(conn: Connection, key: str) -> None:
    """Forget a claim whose request failed, so the client may send it again."""
    conn.execute(
        delete(lead_requests).where(
            lead_requests.c.idempotency_key == key, lead_requests.c.state == PROCESSING
        )
    )
