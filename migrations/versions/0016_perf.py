"""partners.config_version: what processes cache of a partner's configuration is keyed by;
an index on audit events by (partner, action) for the audit log's list of actions

Every change to a partner or to its role and feature settings stamps a new version in the
same transaction (portal/tenancy/configuration.py); the one statement that starts a partner's
request reads it with the partner.

Revision ID: 0016_perf
Revises: 0015_branding
Create Date: 2026-11-30 16:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0016_perf"
down_revision = "0015_branding"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("partners") as batch_op:
        batch_op.add_column(
            sa.Column("config_version", sa.BigInteger(), server_default="1", nullable=False)
        )
    # The audit log's list of actions walks this index instead of reading every event.
    op.create_index("ix_audit_events_partner_action", "audit_events", ["partner_id", "action"])


def downgrade():
    op.drop_index("ix_audit_events_partner_action", table_name="audit_events")
    with op.batch_alter_table("partners") as batch_op:
        batch_op.drop_column("config_version")
