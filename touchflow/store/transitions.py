"""State changes of many enrollments at once, through the state machine.

A bulk ``UPDATE`` names its event: it touches only the enrollments in one of
the event's source states (``state IN sources(event)``) and moves them all to
the event's one target state, so a bulk change can never make a move the
state machine forbids (python-statemachine's rule for bulk transitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, update

from touchflow.domain.enrollment import Event, bulk_target, sources
from touchflow.store.schema import enrollments

__all__ = ["transition_where"]


def transition_where(
    conn: Connection,
    event: Event,
    where: ColumnElement[bool],
    values: Mapping[str, Any],
) -> int:
    """Apply ``event`` to every enrollment matching ``where`` that it is allowed for.

    ``values`` are the other columns to set (reason, next_due_at, ...), never
    ``state``. Returns how many enrollments changed state.
    """
    if "state" in values:
        raise ValueError("transition_where sets the state itself, from the event")
    result = conn.execute(
        update(enrollments)
        .where(where, enrollments.c.state.in_(sources(event)))
        .values(state=bulk_target(event).value, **values)
    )
    return int(result.rowcount)
