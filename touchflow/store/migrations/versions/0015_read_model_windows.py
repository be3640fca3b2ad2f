"""read model windows: indexes a dashboard's window needs

A dashboard page reads the enrollments of its window (14 days by default): with
no index on ``enrolled_at`` every view scanned the whole ``rollup_funnel``. The
deliverability page reads a window's bounces and spam complaints (by metric and
day), then the counters of the few recipient domains it shows (by domain and day).

Revision ID: 0015_read_model_windows
Revises: 0014_dashboard_read_models
Create Date: 2026-12-06
"""

from alembic import op

revision = "0015_read_model_windows"
down_revision = "0014_dashboard_read_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_rollup_funnel_enrolled_at"), "rollup_funnel", ["enrolled_at"])
    op.create_index(op.f("ix_rollup_delivery_metric_day"), "rollup_delivery", ["metric", "day"])
    op.create_index(op.f("ix_rollup_delivery_domain_day"), "rollup_delivery", ["domain", "day"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rollup_delivery_domain_day"), table_name="rollup_delivery")
    op.drop_index(op.f("ix_rollup_delivery_metric_day"), table_name="rollup_delivery")
    op.drop_index(op.f("ix_rollup_funnel_enrolled_at"), table_name="rollup_funnel")
