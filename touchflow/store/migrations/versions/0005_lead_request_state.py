"""lead_requests: payload hash and state (Idempotency-Key by the IETF draft)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a column's nullability in place.
    with op.batch_alter_table("lead_requests") as batch:
        batch.add_column(sa.Column("payload_hash", sa.String(length=64), nullable=True))
        # Keys stored before: answered, so "done".
        batch.add_column(
            sa.Column("state", sa.String(length=10), server_default="done", nullable=False)
        )
        batch.alter_column("response", existing_type=sa.JSON(), nullable=True)
        batch.create_index(batch.f("ix_lead_requests_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM lead_requests WHERE response IS NULL")
    with op.batch_alter_table("lead_requests") as batch:
        batch.drop_index(batch.f("ix_lead_requests_created_at"))
        batch.alter_column("response", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("state")
        batch.drop_column("payload_hash")
