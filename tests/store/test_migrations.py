"""The Alembic migrations produce exactly the schema the code declares."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from touchflow.store.schema import metadata


def test_migrations_match_metadata(db_from_empty):
    with db_from_empty.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
