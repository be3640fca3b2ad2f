"""rollups: the reporting read model (counters, deliverability, funnel, marks)

Revision ID: 0008_rollups
Revises: 0007_deals
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_rollups"
down_revision = "0007_deals"
branch_labels = None
depends_on = None

_DIMS = ("cadence_id", "step_id", "variant", "channel", "owner_email", "mailbox")
_SIZES = {"cadence_id": 100, "step_id": 100, "variant": 50, "channel": 16}


def upgrade() -> None:
    op.create_table(
        "rollup_counts",
        sa.Column("day", sa.Date(), nullable=False),
        *[sa.Column(d, sa.String(length=_SIZES.get(d, 320)), nullable=False) for d in _DIMS],
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", *_DIMS, "metric", name=op.f("pk_rollup_counts")),
    )
    op.create_table(
        "rollup_delivery",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "mailbox", "domain", "metric", name=op.f("pk_rollup_delivery")
        ),
    )
    op.create_table(
        "rollup_funnel",
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("prospect_id", sa.Integer(), nullable=False),
        sa.Column("cadence_id", sa.String(length=100), nullable=False),
        sa.Column("owner_email", sa.String(length=320), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("contacted_at", sa.DateTime(), nullable=True),
        sa.Column("engaged_at", sa.DateTime(), nullable=True),
        sa.Column("replied_at", sa.DateTime(), nullable=True),
        sa.Column("meeting_at", sa.DateTime(), nullable=True),
        sa.Column("sql_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("enrollment_id", name=op.f("pk_rollup_funnel")),
    )
    op.create_index(op.f("ix_rollup_funnel_prospect_id"), "rollup_funnel", ["prospect_id"])
    op.create_index(op.f("ix_rollup_funnel_cadence_id"), "rollup_funnel", ["cadence_id"])
    op.create_table(
        "rollup_seen",
        sa.Column("unit", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("unit", "metric", name=op.f("pk_rollup_seen")),
    )
    op.create_table(
        "rollup_marks",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("mark", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_rollup_marks")),
    )
    op.create_table(
        "rollup_pending",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "row_id", name=op.f("pk_rollup_pending")),
    )


def downgrade() -> None:
    op.drop_table("rollup_pending")
    op.drop_table("rollup_marks")
    op.drop_table("rollup_seen")
    op.drop_index(op.f("ix_rollup_funnel_cadence_id"), table_name="rollup_funnel")
    op.drop_index(op.f("ix_rollup_funnel_prospect_id"), table_name="rollup_funnel")
    op.drop_table("rollup_funnel")
    op.drop_table("rollup_delivery")
    op.drop_table("rollup_counts")
