"""an index on audit events by (partner, actor, time): the audit log filtered by a person's
address reads their events newest first, not every event of the partner

Revision ID: 0020_audit_actor_index
Revises: 0019_sso_logout
Create Date: 2026-12-01 04:00:00

"""

from alembic import op

revision = "0020_audit_actor_index"
down_revision = "0019_sso_logout"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_audit_events_partner_actor_time",
        "audit_events",
        ["partner_id", "actor_label", "created_at"],
    )


def downgrade():
    op.drop_index("ix_audit_events_partner_actor_time", table_name="audit_events")
