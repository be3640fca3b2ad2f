"""The database's schema (``touchflow db upgrade``), and which database errors pass."""

from __future__ import annotations

from sqlalchemy import Engine

from touchflow.store.db import transient_error, upgrade

__all__ = ["transient_error", "upgrade_schema"]


def upgrade_schema(engine: Engine) -> None:
    """Create or migrate the schema to the head revision (Alembic, in one transaction)."""
    upgrade(engine)
