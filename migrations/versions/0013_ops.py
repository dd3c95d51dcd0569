"""operations: outbox delivery states for the mail worker; the audit trail append-only

The outbox gains what a separate delivery worker needs: a status (pending, sent, failed, or
kept when no mail server is configured), the number of attempts, when the next one is due
and a lease (claimed_until) so a crashed worker's messages are picked up again. Existing
rows: delivered ones are sent, failed ones failed, the rest kept (development mail).
The audit log filtered by action gets an index of its own.

On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE of audit_events unless the
transaction set `portal.audit_maintenance` to 'on' (set_config(..., true): transaction-local),
which only a maintenance service (retention, erasure) does.

Revision ID: 0013_ops
Revises: 0012_api
Create Date: 2026-11-30 16:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013_ops'
down_revision = '0012_api'
branch_labels = None
depends_on = None

STATUS = sa.Enum('pending', 'sent', 'failed', 'kept', name='mailstatus', native_enum=False,
                 length=32)

APPEND_ONLY = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('portal.audit_maintenance', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Only a maintenance service may change the audit trail, after '
                     'SELECT set_config(''portal.audit_maintenance'', ''on'', true).';
END;
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"""


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', STATUS, nullable=False, server_default='kept'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_outbox_messages_due', ['status', 'next_attempt_at'],
                              unique=False)
    outbox = sa.table('outbox_messages', sa.column('status', sa.String),
                      sa.column('sent_at', sa.DateTime), sa.column('error', sa.String))
    op.execute(outbox.update().where(outbox.c.sent_at.is_not(None)).values(status='sent'))
    op.execute(outbox.update().where(outbox.c.sent_at.is_(None), outbox.c.error.is_not(None))
               .values(status='failed'))
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.alter_column('status', server_default=None)
        batch_op.alter_column('attempts', server_default=None)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_partner_action_time',
                              ['partner_id', 'action', 'created_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(APPEND_ONLY)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events')
        op.execute('DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events')
        op.execute('DROP FUNCTION IF EXISTS audit_events_append_only()')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_partner_action_time')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_due')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('status')
