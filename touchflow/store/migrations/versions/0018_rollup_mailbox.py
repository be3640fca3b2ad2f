"""rollup mailbox: deliverability per day and sending mailbox, every recipient domain summed

The dashboard's deliverability page shows each mailbox's totals over its window;
read from ``rollup_counts`` (every cadence, step, owner and mailbox of every
day) they cost seconds over 90 days at a million enrollments. Filled here from
``rollup_delivery`` as it stands, so the two agree from the first refresh on.

Revision ID: 0018_rollup_mailbox
Revises: 0017_forecast_results
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_rollup_mailbox"
down_revision = "0017_forecast_results"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_mailbox",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "mailbox", "metric", name=op.f("pk_rollup_mailbox")),
    )
    op.execute(
        "INSERT INTO rollup_mailbox (day, mailbox, metric, n)"
        " SELECT day, mailbox, metric, SUM(n) FROM rollup_delivery GROUP BY day, mailbox, metric"
    )


def downgrade() -> None:
    op.drop_table("rollup_mailbox")
