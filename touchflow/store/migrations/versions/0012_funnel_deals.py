"""funnel_deals: the funnel's opportunity and won stages, from deals

Revision ID: 0012_funnel_deals
Revises: 0011_call_summaries
Create Date: 2026-12-06

Two columns on ``rollup_funnel``, and an index for the report's ``--owner``
filter; ``rollup_cadence``, ``rollup_counts`` summed over channel, owner and
mailbox (filled here from ``rollup_counts``). The ``deals`` and ``deal_stage_changes`` sources have no mark yet, so
the first refresh after the upgrade folds every deal and fills the columns
for every enrollment of an account that has one (the backfill).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_funnel_deals"
down_revision = "0011_call_summaries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollup_funnel") as batch:
        batch.add_column(sa.Column("opportunity_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("won_at", sa.DateTime(), nullable=True))
    op.create_index(op.f("ix_rollup_funnel_owner_email"), "rollup_funnel", ["owner_email"])
    op.create_table(
        "rollup_cadence",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cadence_id", sa.String(length=100), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=50), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "cadence_id", "step_id", "variant", "metric", name=op.f("pk_rollup_cadence")
        ),
    )
    op.execute(
        "INSERT INTO rollup_cadence (day, cadence_id, step_id, variant, metric, n)"
        " SELECT day, cadence_id, step_id, variant, metric, SUM(n) FROM rollup_counts"
        " GROUP BY day, cadence_id, step_id, variant, metric"
    )


def downgrade() -> None:
    op.drop_table("rollup_cadence")
    op.drop_index(op.f("ix_rollup_funnel_owner_email"), table_name="rollup_funnel")
    with op.batch_alter_table("rollup_funnel") as batch:
        batch.drop_column("won_at")
        batch.drop_column("opportunity_at")
