"""prospects in: accounts, scores, routing, crm

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("revenue_band", sa.String(length=32), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("technologies", sa.JSON(), nullable=True),
        sa.Column("field_sources", sa.JSON(), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column("crm_company_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("domain", name=op.f("uq_accounts_domain")),
    )
    op.create_table(
        "crm_cursors",
        sa.Column("crm", sa.String(length=20), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("cursor", sa.String(length=500), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("crm", name=op.f("pk_crm_cursors")),
    )
    op.create_table(
        "crm_links",
        sa.Column("crm", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("local_key", sa.String(length=320), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("crm", "kind", "local_key", name=op.f("pk_crm_links")),
    )
    op.create_table(
        "crm_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(length=20), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_outbox")),
        sa.UniqueConstraint(
            "crm", "operation", "key", name=op.f("uq_crm_outbox_crm_operation_key")
        ),
    )
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "routing_ledger",
        sa.Column("pool", sa.String(length=100), nullable=False),
        sa.Column("member_email", sa.String(length=320), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("credit", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pool", "member_email", name=op.f("pk_routing_ledger")),
    )
    op.create_table(
        "lead_requests",
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("prospect_id", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prospect_id"], ["prospects.id"], name=op.f("fk_lead_requests_prospect_id_prospects")
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_lead_requests")),
    )
    op.create_table(
        "route_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prospect_id", sa.Integer(), nullable=False),
        sa.Column("assignee_email", sa.String(length=320), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.Column("sla_due_at", sa.DateTime(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("rerouted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["prospect_id"],
            ["prospects.id"],
            name=op.f("fk_route_assignments_prospect_id_prospects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_assignments")),
    )
    with op.batch_alter_table("route_assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_route_assignments_assignee_email_assigned_at",
            ["assignee_email", "assigned_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_route_assignments_prospect_id"), ["prospect_id"], unique=False
        )
        batch_op.create_index(
            "ix_route_assignments_status_sla_due_at", ["status", "sla_due_at"], unique=False
        )

    op.create_table(
        "score_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prospect_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("fit", sa.Integer(), nullable=False),
        sa.Column("engagement", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(length=1), nullable=False),
        sa.Column("lifecycle", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("icp_version", sa.String(length=32), nullable=False),
        sa.Column("scored_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prospect_id"], ["prospects.id"], name=op.f("fk_score_history_prospect_id_prospects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_history")),
    )
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_score_history_prospect_id"), ["prospect_id"], unique=False
        )

    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("seniority", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("department", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("email_free", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("email_role", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("field_sources", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("score", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("grade", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("lifecycle", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("scored_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ae_email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("crm_person_id", sa.String(length=100), nullable=True))
        batch_op.create_index(batch_op.f("ix_prospects_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prospects_ae_email"), ["ae_email"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_prospects_account_id_accounts"), "accounts", ["account_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_prospects_account_id_accounts"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_prospects_ae_email"))
        batch_op.drop_index(batch_op.f("ix_prospects_account_id"))
        batch_op.drop_column("crm_person_id")
        batch_op.drop_column("ae_email")
        batch_op.drop_column("scored_at")
        batch_op.drop_column("lifecycle")
        batch_op.drop_column("grade")
        batch_op.drop_column("score")
        batch_op.drop_column("field_sources")
        batch_op.drop_column("email_role")
        batch_op.drop_column("email_free")
        batch_op.drop_column("department")
        batch_op.drop_column("seniority")
        batch_op.drop_column("account_id")

    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_score_history_prospect_id"))

    op.drop_table("score_history")
    with op.batch_alter_table("route_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_route_assignments_status_sla_due_at")
        batch_op.drop_index(batch_op.f("ix_route_assignments_prospect_id"))
        batch_op.drop_index("ix_route_assignments_assignee_email_assigned_at")

    op.drop_table("route_assignments")
    op.drop_table("lead_requests")
    op.drop_table("routing_ledger")
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_outbox_status_next_attempt_at")

    op.drop_table("crm_outbox")
    op.drop_table("crm_links")
    op.drop_table("crm_cursors")
    op.drop_table("accounts")
