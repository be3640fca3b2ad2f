"""channels and compliance: SMS consent, send caps, cadence pauses, reply matching

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_consent_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_touches_message_id"), ["message_id"], unique=False)
    op.create_table(
        "send_counts",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "bucket", name=op.f("pk_send_counts")),
    )
    op.create_table(
        "cadence_pauses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cadence_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("paused_at", sa.DateTime(), nullable=False),
        sa.Column("resumed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cadence_pauses")),
    )
    with op.batch_alter_table("cadence_pauses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cadence_pauses_cadence_id"), ["cadence_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cadence_pauses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cadence_pauses_cadence_id"))
    op.drop_table("cadence_pauses")
    op.drop_table("send_counts")
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_touches_message_id"))
    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.drop_column("sms_consent_at")
