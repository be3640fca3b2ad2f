"""deals, their stage changes and contacts, daily pipeline snapshots

Revision ID: 0007_deals
Revises: 0006_call_transcripts
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_deals"
down_revision = "0006_call_transcripts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("deal_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("account_domain", sa.String(length=255), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("forecast_category", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
        sa.UniqueConstraint("source", "deal_id", name=op.f("uq_deals_source_deal_id")),
    )
    op.create_index(op.f("ix_deals_account_domain"), "deals", ["account_domain"])
    op.create_index("ix_deals_outcome", "deals", ["outcome"])
    op.create_table(
        "deal_stage_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("deal_id", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_changes")),
        sa.UniqueConstraint(
            "source",
            "deal_id",
            "entered_at",
            "stage",
            name=op.f("uq_deal_stage_changes_source_deal_id_entered_at_stage"),
        ),
    )
    op.create_index("ix_deal_stage_changes_entered_at", "deal_stage_changes", ["entered_at"])
    op.create_table(
        "deal_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("deal_id", sa.String(length=100), nullable=False),
        sa.Column("contact_key", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("crm_contact_id", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("inferred", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_contacts")),
        sa.UniqueConstraint(
            "source",
            "deal_id",
            "contact_key",
            name=op.f("uq_deal_contacts_source_deal_id_contact_key"),
        ),
    )
    op.create_index(op.f("ix_deal_contacts_email"), "deal_contacts", ["email"])
    op.create_table(
        "pipeline_snapshots",
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("deal_id", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("forecast_category", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column("account_domain", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint(
            "snapshot_date", "source", "deal_id", name=op.f("pk_pipeline_snapshots")
        ),
    )


def downgrade() -> None:
    op.drop_table("pipeline_snapshots")
    op.drop_index(op.f("ix_deal_contacts_email"), table_name="deal_contacts")
    op.drop_table("deal_contacts")
    op.drop_index("ix_deal_stage_changes_entered_at", table_name="deal_stage_changes")
    op.drop_table("deal_stage_changes")
    op.drop_index("ix_deals_outcome", table_name="deals")
    op.drop_index(op.f("ix_deals_account_domain"), table_name="deals")
    op.drop_table("deals")
