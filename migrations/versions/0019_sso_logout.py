"""single sign-on: back-channel logout (OpenID Connect Back-Channel Logout 1.0)

A user session remembers the identity provider's session it came from (the ID token's
`iss` and `sid`), so that the provider's logout token can end exactly that session. One new
tenant table, the logout tokens each partner accepted (by `jti`, against replays), with the
forced row-level security policy of migration 0006 on PostgreSQL; it references no other
tenant table.

Revision ID: 0019_sso_logout
Revises: 0018_pg_user_search
Create Date: 2026-12-01 03:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0019_sso_logout'
down_revision = '0018_pg_user_search'
branch_labels = None
depends_on = None

RULE = (
    "(SELECT current_setting('portal.scope', true)) = 'all' "
    "OR partner_id = (SELECT nullif(current_setting('portal.partner_id', true), '')::integer)"
)


def upgrade():
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sso_issuer', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('sso_sid', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_user_sessions_sso_sid', ['partner_id', 'sso_sid'], unique=False)

    op.create_table('sso_logout_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_sso_logout_tokens_partner_id_partners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_logout_tokens')),
    sa.UniqueConstraint('partner_id', 'jti', name=op.f('uq_sso_logout_tokens_partner_id_jti'))
    )
    with op.batch_alter_table('sso_logout_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_logout_tokens_partner_id'), ['partner_id'], unique=False)
        batch_op.create_index('ix_sso_logout_tokens_partner_received', ['partner_id', 'received_at'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE sso_logout_tokens ENABLE ROW LEVEL SECURITY')
        op.execute('ALTER TABLE sso_logout_tokens FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY partner_isolation ON sso_logout_tokens USING ({RULE}) WITH CHECK ({RULE})'
        )


def downgrade():
    with op.batch_alter_table('sso_logout_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_sso_logout_tokens_partner_received')
        batch_op.drop_index(batch_op.f('ix_sso_logout_tokens_partner_id'))
    op.drop_table('sso_logout_tokens')
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_user_sessions_sso_sid')
        batch_op.drop_column('sso_sid')
        batch_op.drop_column('sso_issuer')
