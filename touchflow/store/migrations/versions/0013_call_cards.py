"""call_cards: the live guidance's cards and checklist ticks per call

Revision ID: 0013_call_cards
Revises: 0012_funnel_deals
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_call_cards"
down_revision = "0012_funnel_deals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tracker", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_sid"],
            ["call_transcripts.call_sid"],
            name=op.f("fk_call_cards_call_sid_call_transcripts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_cards")),
        sa.UniqueConstraint("call_sid", "key", name=op.f("uq_call_cards_call_sid_key")),
    )


def downgrade() -> None:
    op.drop_table("call_cards")
