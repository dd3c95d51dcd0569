"""data protection: exports, account closure, retention settings, partner offboarding, and an
append-only audit table

- `data_exports` (tenant table, forced row-level security like every tenant table): a user's
  requested copy of their data, prepared by `flask maintenance run` and kept for a limited time.
- `users.closing_at`: when an account the user asked to close is closed (cooling-off).
- `partners.retention_settings` (JSON) and `partners.closed_at` / `partners.delete_after` for
  offboarding (the status `closed` needs no schema change: the enum is a plain string).
- On PostgreSQL, `audit_events` becomes append-only: a trigger refuses UPDATE and DELETE unless
  the transaction set `portal.audit_maintenance` to 'on' (only the audit maintenance path in
  `portal/audit/maintenance.py` does). The ops migration creates the same function and trigger;
  both use CREATE OR REPLACE for the function (identical body) and create the trigger only when
  it is missing, so whichever runs first wins and the result is one trigger either way.
  Downgrade drops the trigger and function only when this migration created them (recorded in a
  comment on the function), so the other migration's copy is left alone.

Revision ID: 0014_privacy
Revises: 0013_ops
Create Date: 2026-11-30 16:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0014_privacy'
down_revision = '0013_ops'
branch_labels = None
depends_on = None

RULE = (
    "(SELECT current_setting('portal.scope', true)) = 'all' "
    "OR partner_id = (SELECT nullif(current_setting('portal.partner_id', true), '')::integer)"
)
MARK = 'created by 0014_privacy'

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
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
$$ LANGUAGE plpgsql
"""

CREATE_TRIGGER = f"""
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgname = 'audit_events_append_only'
        AND tgrelid = 'audit_events'::regclass
    ) THEN
        CREATE TRIGGER audit_events_append_only
            BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
        COMMENT ON FUNCTION audit_events_append_only() IS '{MARK}';
    END IF;
END
$$
"""

DROP_IF_OURS = f"""
DO $$
BEGIN
    IF obj_description('audit_events_append_only()'::regprocedure, 'pg_proc') = '{MARK}' THEN
        DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
        DROP FUNCTION audit_events_append_only();
    END IF;
END
$$
"""


def upgrade():
    op.create_table(
        'data_exports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('partner_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('ready_at', sa.DateTime(), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('content', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ['partner_id'], ['partners.id'], name=op.f('fk_data_exports_partner_id_partners'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['partner_id', 'user_id'], ['users.partner_id', 'users.id'],
            name='fk_data_exports_user', ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_data_exports')),
    )
    with op.batch_alter_table('data_exports') as batch_op:
        batch_op.create_index(batch_op.f('ix_data_exports_partner_id'), ['partner_id'])
        batch_op.create_index(batch_op.f('ix_data_exports_user_id'), ['user_id'])
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('closing_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('partners') as batch_op:
        batch_op.add_column(
            sa.Column('retention_settings', sa.JSON(), server_default='{}', nullable=False)
        )
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('delete_after', sa.DateTime(), nullable=True))

    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE data_exports ENABLE ROW LEVEL SECURITY')
        op.execute('ALTER TABLE data_exports FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY partner_isolation ON data_exports USING ({RULE}) WITH CHECK ({RULE})'
        )
        # Whichever of the two migrations comes second must not mark the function as its own.
        op.execute(
            "DO $$ BEGIN IF to_regprocedure('audit_events_append_only()') IS NOT NULL THEN "
            "COMMENT ON FUNCTION audit_events_append_only() IS 'kept'; END IF; END $$"
        )
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(CREATE_TRIGGER)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(DROP_IF_OURS)
    with op.batch_alter_table('partners') as batch_op:
        batch_op.drop_column('delete_after')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('retention_settings')
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('closing_at')
    with op.batch_alter_table('data_exports') as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_exports_user_id'))
        batch_op.drop_index(batch_op.f('ix_data_exports_partner_id'))
    op.drop_table('data_exports')
