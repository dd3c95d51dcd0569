"""support impersonation: the impersonations table, and audit events that name one

An impersonation points at the agent, the user, the agent's own session and the session the
agent acts in, each a composite (partner_id, x_id) key, so it can never reach into another
partner; its table has the same forced row-level security policy as every tenant table. Audit
events gain `impersonation_id` (what was done while impersonating, with its reason and
ticket) and two indexes: events about one user, and the few events support made.

Revision ID: 0010_support_impersonation
Revises: 0009_unconfirmed_signups
Create Date: 2026-12-02 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0010_support_impersonation'
down_revision = '0009_unconfirmed_signups'
branch_labels = None
depends_on = None

# As in 0006: one policy per tenant table, the settings read once per statement.
RULE = (
    "(SELECT current_setting('portal.scope', true)) = 'all' "
    "OR partner_id = (SELECT nullif(current_setting('portal.partner_id', true), '')::integer)"
)
END_REASONS = (
    'stopped', 'expired', 'idle', 'session_revoked', 'agent_session_ended',
    'agent_deactivated', 'support_removed', 'feature_off', 'target_unavailable',
)


def upgrade():
    with op.batch_alter_table('user_sessions') as batch_op:
        batch_op.create_unique_constraint('uq_user_sessions_partner_id_id', ['partner_id', 'id'])

    op.create_table(
        'impersonations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('partner_id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('target_id', sa.Integer(), nullable=False),
        sa.Column('agent_session_id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('ticket', sa.String(length=64), nullable=True),
        sa.Column('ip', sa.String(length=45), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.Column(
            'end_reason',
            sa.Enum(*END_REASONS, name='endreason', native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column('ended_by_id', sa.Integer(), nullable=True),
        sa.CheckConstraint('agent_id <> target_id', name=op.f('ck_impersonations_not_oneself')),
        sa.ForeignKeyConstraint(
            ['partner_id'], ['partners.id'], name=op.f('fk_impersonations_partner_id_partners'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['partner_id', 'agent_id'], ['users.partner_id', 'users.id'],
            name='fk_impersonations_agent',
        ),
        sa.ForeignKeyConstraint(
            ['partner_id', 'target_id'], ['users.partner_id', 'users.id'],
            name='fk_impersonations_target',
        ),
        sa.ForeignKeyConstraint(
            ['partner_id', 'agent_session_id'], ['user_sessions.partner_id', 'user_sessions.id'],
            name='fk_impersonations_agent_session',
        ),
        sa.ForeignKeyConstraint(
            ['partner_id', 'session_id'], ['user_sessions.partner_id', 'user_sessions.id'],
            name='fk_impersonations_session',
        ),
        sa.ForeignKeyConstraint(
            ['partner_id', 'ended_by_id'], ['users.partner_id', 'users.id'],
            name='fk_impersonations_ended_by',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_impersonations')),
        sa.UniqueConstraint('session_id', name=op.f('uq_impersonations_session_id')),
    )
    with op.batch_alter_table('impersonations') as batch_op:
        batch_op.create_index(
            'ix_impersonations_agent', ['partner_id', 'agent_id', 'started_at'], unique=False
        )
        batch_op.create_index(
            'ix_impersonations_target', ['partner_id', 'target_id', 'started_at'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_impersonations_partner_id'), ['partner_id'], unique=False
        )

    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.add_column(sa.Column('impersonation_id', sa.Integer(), nullable=True))
        batch_op.create_index(
            'ix_audit_events_partner_target',
            ['partner_id', 'target_type', 'target_id'],
            unique=False,
        )
        batch_op.create_index(
            'ix_audit_events_partner_support',
            ['partner_id', 'created_at'],
            unique=False,
            sqlite_where=sa.text('impersonation_id IS NOT NULL'),
            postgresql_where=sa.text('impersonation_id IS NOT NULL'),
        )

    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE impersonations ENABLE ROW LEVEL SECURITY')
        op.execute('ALTER TABLE impersonations FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY partner_isolation ON impersonations USING ({RULE}) '
            f'WITH CHECK ({RULE})'
        )


def downgrade():
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.drop_index('ix_audit_events_partner_support')
        batch_op.drop_index('ix_audit_events_partner_target')
        batch_op.drop_column('impersonation_id')
    op.drop_table('impersonations')  # its policy goes with it
    with op.batch_alter_table('user_sessions') as batch_op:
        batch_op.drop_constraint('uq_user_sessions_partner_id_id', type_='unique')
