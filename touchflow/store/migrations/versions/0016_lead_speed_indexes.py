"""speed to lead, window first: route assignments by time and by prospect in id order,
task completions by enrollment

Revision ID: 0016_lead_speed_indexes
Revises: 0015_read_model_windows
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_lead_speed_indexes"
down_revision = "0015_read_model_windows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The leads received in a window (their first assignment's time), and whether an
    # assignment is a prospect's first or latest (an index-only probe by prospect and id).
    op.create_index(
        "ix_route_assignments_assigned_at", "route_assignments", ["assigned_at"], unique=False
    )
    op.create_index(
        "ix_route_assignments_prospect_id_id",
        "route_assignments",
        ["prospect_id", "id"],
        unique=False,
    )
    # An AE's first completed task per enrollment: partial, only task completions (a
    # tenth of the events), so it stays small; the build reads the events once.
    op.create_index(
        "ix_events_task_completed_enrollment_id",
        "events",
        ["enrollment_id", "occurred_at"],
        unique=False,
        sqlite_where=sa.text("source = 'task' AND type = 'completed'"),
        postgresql_where=sa.text("source = 'task' AND type = 'completed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_task_completed_enrollment_id", table_name="events")
    op.drop_index("ix_route_assignments_prospect_id_id", table_name="route_assignments")
    op.drop_index("ix_route_assignments_assigned_at", table_name="route_assignments")
