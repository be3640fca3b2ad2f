"""The database's schema: migrate it to the newest revision (``touchflow db upgrade``)."""

from __future__ import annotations

from sqlalchemy import Engine

from touchflow.store.db import upgrade

__all__ = ["upgrade_schema"]


def upgrade_schema(engine: Engine) -> None:
    """Create or migrate the schema to the head revision (Alembic, in one transaction)."""
    upgrade(engine)
