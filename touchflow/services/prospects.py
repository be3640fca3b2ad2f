"""Stored prospects, read one at a time (``touchflow preview --prospect``)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from touchflow.domain.prospects import Prospect, normalize_email
from touchflow.store.prospects import prospect_from_row
from touchflow.store.schema import prospects

__all__ = ["stored_prospect"]


def stored_prospect(engine: Engine, email: str) -> Prospect | None:
    """The stored prospect at ``email`` (normalized here), or None when it is not imported."""
    with engine.connect() as conn:
        row = conn.execute(
            select(prospects).where(prospects.c.email == normalize_email(email))
        ).first()
    return None if row is None else prospect_from_row(row)
