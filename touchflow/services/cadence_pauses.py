"""Pausing whole cadences by hand: pause, resume, and the pauses in force.

What ``touchflow cadence pause|resume|paused`` do, each in one transaction.
The tick claims no enrollment of a paused cadence; the bounce shield pauses
cadences by itself (:func:`touchflow.store.guards.check_bounce_shield`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from touchflow.store import guards

__all__ = ["pause_cadence", "paused_cadences", "resume_cadence"]


def pause_cadence(engine: Engine, cadence_id: str, reason: str, now: datetime) -> bool:
    """Stop claiming the cadence's enrollments; False when it is already paused."""
    with engine.begin() as conn:
        return guards.pause_cadence(conn, cadence_id, reason, now)


def resume_cadence(engine: Engine, cadence_id: str, now: datetime) -> bool:
    """Lift the cadence's pause (the bounce shield samples afresh from ``now``); False if none."""
    with engine.begin() as conn:
        return guards.resume_cadence(conn, cadence_id, now)


def paused_cadences(engine: Engine) -> list[Any]:
    """Every pause in force, oldest first (``cadence_id``, ``paused_at``, ``reason``, ...)."""
    with engine.connect() as conn:
        return guards.list_pauses(conn)
