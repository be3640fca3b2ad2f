"""forecast results: the dashboard's forecast and backtest, computed once per key, shared

Revision ID: 0017_forecast_results
Revises: 0016_lead_speed_indexes
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_forecast_results"
down_revision = "0016_lead_speed_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_results",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("settings_key", sa.String(length=64), nullable=False),
        sa.Column("as_of_day", sa.Date(), nullable=False),
        sa.Column("deals_version", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint(
            "scope", "settings_key", "as_of_day", "deals_version", name=op.f("pk_forecast_results")
        ),
    )
    op.create_index(
        op.f("ix_forecast_results_latest"),
        "forecast_results",
        ["scope", "settings_key", "computed_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_forecast_results_latest"), table_name="forecast_results")
    op.drop_table("forecast_results")
