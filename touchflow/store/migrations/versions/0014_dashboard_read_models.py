"""dashboard read models: buying-committee coverage per open deal, kept up to date

Revision ID: 0014_dashboard_read_models
Revises: 0013_call_cards
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_dashboard_read_models"
down_revision = "0013_call_cards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "committee_coverage",
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("deal_id", sa.String(length=100), nullable=False),
        sa.Column("account_domain", sa.String(length=255), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("single_threaded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("source", "deal_id", name=op.f("pk_committee_coverage")),
    )
    op.create_table(
        "read_model_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_read_model_state")),
    )
    with op.batch_alter_table("deal_contacts") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.create_index(op.f("ix_deal_contacts_updated_at"), "deal_contacts", ["updated_at"])
    op.create_index(op.f("ix_prospects_updated_at"), "prospects", ["updated_at"])
    op.create_index(op.f("ix_deals_updated_at"), "deals", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_deals_updated_at"), table_name="deals")
    op.drop_index(op.f("ix_prospects_updated_at"), table_name="prospects")
    op.drop_index(op.f("ix_deal_contacts_updated_at"), table_name="deal_contacts")
    with op.batch_alter_table("deal_contacts") as batch:
        batch.drop_column("updated_at")
    op.drop_table("read_model_state")
    op.drop_table("committee_coverage")
