"""Persistence: SQLAlchemy 2 tables, the ledger and repositories, Alembic migrations."""
