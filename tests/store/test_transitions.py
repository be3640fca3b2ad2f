"""Bulk state changes go through the state machine: only allowed moves happen."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, select

from touchflow.domain.enrollment import Event
from touchflow.store.schema import cadence_versions, enrollments, prospects
from touchflow.store.transitions import transition_where

AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
STATES = ["pending", "active", "paused", "failed", "finished", "bounced", "opted_out"]


def _world(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(prospects),
            [{"id": 1, "email": "a@x.example", "created_at": AT, "updated_at": AT}],
        )
        conn.execute(
            insert(cadence_versions),
            [
                {
                    "version": "v",
                    "cadence_id": "c",
                    "yaml_text": "",
                    "source_path": "c.yaml",
                    "templates": {},
                    "created_at": AT,
                }
            ],
        )
        conn.execute(
            insert(enrollments),
            [
                {
                    "id": i,
                    "prospect_id": 1,
                    "cadence_id": f"c{i}",
                    "cadence_version": "v",
                    "state": state,
                    "step_index": 0,
                    "owner_email": "sdr@x.example",
                    "sender_email": "sdr@x.example",
                    "enrolled_at": AT,
                    "updated_at": AT,
                }
                for i, state in enumerate(STATES, 1)
            ],
        )


def _states(db: Engine) -> dict[int, str]:
    with db.connect() as conn:
        return {row.id: row.state for row in conn.execute(select(enrollments))}


def test_a_bulk_pause_moves_only_what_the_state_machine_allows(db: Engine) -> None:
    _world(db)
    with db.begin() as conn:
        n = transition_where(
            conn, Event.PAUSE, enrollments.c.prospect_id == 1, {"reason": "test", "updated_at": AT}
        )
    assert n == 2
    assert _states(db) == {
        1: "paused",  # pending
        2: "paused",  # active
        3: "paused",
        4: "failed",
        5: "finished",
        6: "bounced",
        7: "opted_out",
    }


def test_the_state_is_the_events_to_set(db: Engine) -> None:
    _world(db)
    with pytest.raises(ValueError, match="sets the state itself"), db.begin() as conn:
        transition_where(conn, Event.FINISH, enrollments.c.id == 1, {"state": "finished"})
