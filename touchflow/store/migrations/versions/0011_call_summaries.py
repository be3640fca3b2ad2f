"""call_summaries and call_tracker_hits: the after-call summary of a transcribed call

Revision ID: 0011_call_summaries
Revises: 0010_close_dates
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_call_summaries"
down_revision = "0010_close_dates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_summaries",
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("enrollment_id", sa.Integer(), nullable=True),
        sa.Column("prospect_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_call_summaries_enrollment_id_enrollments"),
        ),
        sa.ForeignKeyConstraint(
            ["prospect_id"], ["prospects.id"], name=op.f("fk_call_summaries_prospect_id_prospects")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_call_summaries_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("call_sid", name=op.f("pk_call_summaries")),
    )
    op.create_index(op.f("ix_call_summaries_task_id"), "call_summaries", ["task_id"], unique=False)
    op.create_table(
        "call_tracker_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("enrollment_id", sa.Integer(), nullable=True),
        sa.Column("tracker", sa.String(length=100), nullable=False),
        sa.Column("said_by", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_call_tracker_hits_enrollment_id_enrollments"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_call_tracker_hits_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_tracker_hits")),
    )
    for column in ("call_sid", "task_id", "tracker"):
        op.create_index(
            op.f(f"ix_call_tracker_hits_{column}"), "call_tracker_hits", [column], unique=False
        )


def downgrade() -> None:
    for column in ("call_sid", "task_id", "tracker"):
        op.drop_index(op.f(f"ix_call_tracker_hits_{column}"), table_name="call_tracker_hits")
    op.drop_table("call_tracker_hits")
    op.drop_index(op.f("ix_call_summaries_task_id"), table_name="call_summaries")
    op.drop_table("call_summaries")
