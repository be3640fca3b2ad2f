"""Exit events on the store: a bounce or opt-out of a prospect that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from touchflow.errors import TouchflowError
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import apply_exit_event
from touchflow.store.schema import events, suppressions

AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["bounce", "unsubscribe"])
def test_an_unknown_prospect_is_refused_and_nothing_is_written(db: Engine, kind: str) -> None:
    with pytest.raises(TouchflowError, match="no prospect 4242"), db.begin() as conn:
        apply_exit_event(conn, RuntimeCache("http://localhost"), 4242, kind, AT, source="test")
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(suppressions)).scalar() == 0
