"""users: dashboard sign-in (role, manager, Argon2id password hash)

Revision ID: 0009_users
Revises: 0008_rollups
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_users"
down_revision = "0008_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("manager_email", sa.String(length=320), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(op.f("ix_users_manager_email"), "users", ["manager_email"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_manager_email"), table_name="users")
    op.drop_table("users")
