"""release enrollments held for a missing phone

Before this version a text or call step for a prospect without a usable
number held the enrollment (``pending``, ``missing_data:prospect.phone``)
until someone fixed the data. Now such a step is skipped (``no_phone``) and
the cadence goes on, so the held enrollments are made due again: the next
tick decides them under the new rule.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Stored the way UTCDateTime stores it: naive UTC.
_NOW = sa.bindparam("now", type_=sa.DateTime())


def upgrade() -> None:
    enrollments = sa.table(
        "enrollments",
        sa.column("state", sa.String),
        sa.column("reason", sa.String),
        sa.column("next_due_at", sa.DateTime),
        sa.column("updated_at", sa.DateTime),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.get_bind().execute(
        enrollments.update()
        .where(
            enrollments.c.state == "pending",
            enrollments.c.reason == "missing_data:prospect.phone",
        )
        .values(reason=None, next_due_at=_NOW, updated_at=_NOW),
        {"now": now},
    )


def downgrade() -> None:
    # Nothing to undo: a released enrollment is decided again by the tick of its version.
    pass
