"""call_transcripts and call_segments: live call transcripts (Twilio or a Media Stream)

Revision ID: 0006_call_transcripts
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_call_transcripts"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_transcripts",
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("consent", sa.String(length=16), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_call_transcripts_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("call_sid", name=op.f("pk_call_transcripts")),
    )
    op.create_index(
        op.f("ix_call_transcripts_started_at"), "call_transcripts", ["started_at"], unique=False
    )
    op.create_table(
        "call_segments",
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("track", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("said_by", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("stability", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_sid"],
            ["call_transcripts.call_sid"],
            name=op.f("fk_call_segments_call_sid_call_transcripts"),
        ),
        sa.PrimaryKeyConstraint("call_sid", "track", "seq", name=op.f("pk_call_segments")),
    )
    op.create_index(op.f("ix_call_segments_at"), "call_segments", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_call_segments_at"), table_name="call_segments")
    op.drop_table("call_segments")
    op.drop_index(op.f("ix_call_transcripts_started_at"), table_name="call_transcripts")
    op.drop_table("call_transcripts")
