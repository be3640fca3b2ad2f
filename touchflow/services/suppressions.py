"""The global do-not-contact list: add, lift and list suppressed emails, phones and domains.

What ``touchflow suppress add|remove|list`` do, each in one transaction. The
caller normalizes the value (an email lower-cased, a phone in E.164, a domain
without ``@``). Opt-outs by text message and one-click unsubscribe suppress
through :mod:`touchflow.services.opt_outs`; bounces and unsubscribes through
the exit events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from touchflow.store import guards
from touchflow.store.suppressions import add_suppression

__all__ = ["SuppressionList", "lift_suppression", "recent_suppressions", "suppress"]


@dataclass(frozen=True)
class SuppressionList:
    """The most recent suppressions, and how many there are of each kind."""

    rows: list[Any]  # suppressions rows, newest first
    counts: dict[str, int]  # kind -> count (all of them, not only the rows)


def suppress(
    engine: Engine, kind: str, value: str, *, reason: str, source: str, now: datetime
) -> None:
    """Never contact this email, phone or domain again (idempotent: the first reason stays)."""
    with engine.begin() as conn:
        add_suppression(conn, kind, value, reason=reason, source=source, now=now)


def lift_suppression(engine: Engine, kind: str, value: str) -> bool:
    """Remove a suppression; False when ``kind`` ``value`` was not suppressed."""
    with engine.begin() as conn:
        return guards.remove_suppression(conn, kind, value)


def recent_suppressions(engine: Engine, kind: str | None, limit: int) -> SuppressionList:
    """The ``limit`` most recent suppressions (of ``kind`` only, if given) and the counts."""
    with engine.connect() as conn:
        return SuppressionList(
            rows=guards.list_suppressions(conn, kind, limit),
            counts=guards.count_suppressions(conn),
        )
