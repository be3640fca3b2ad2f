"""deal_close_dates: each deal's expected close date as it changed over time

Revision ID: 0010_close_dates
Revises: 0009_users
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_close_dates"
down_revision = "0009_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deal_close_dates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("deal_id", sa.String(length=100), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_close_dates")),
        sa.UniqueConstraint(
            "source",
            "deal_id",
            "changed_at",
            "close_date",
            name=op.f("uq_deal_close_dates_source_deal_id_changed_at_close_date"),
        ),
    )


def downgrade() -> None:
    op.drop_table("deal_close_dates")
