"""single sign-on: each partner's OpenID Connect provider and the identities linked to users

Two tenant tables, each with the forced row-level security policy of migration 0006 on
PostgreSQL. Identities reference their user with a composite (partner_id, user_id) key, so
the database refuses a link into another partner.

Revision ID: 0011_sso
Revises: 0010_support_impersonation
Create Date: 2026-11-30 15:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011_sso'
down_revision = '0010_support_impersonation'
branch_labels = None
depends_on = None

ROLE = sa.Enum(
    'guest', 'basic', 'advanced', 'company', 'admin', name='role', native_enum=False, length=32
)
RULE = (
    "(SELECT current_setting('portal.scope', true)) = 'all' "
    "OR partner_id = (SELECT nullif(current_setting('portal.partner_id', true), '')::integer)"
)
TABLES = ('sso_connections', 'sso_identities')


def upgrade():
    op.create_table('sso_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('discovery_url', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('client_secret_encrypted', sa.Text(), nullable=False),
    sa.Column('client_secret_key_id', sa.String(length=32), nullable=False),
    sa.Column('scopes', sa.String(length=255), nullable=False),
    sa.Column('button_label', sa.String(length=60), nullable=False),
    sa.Column('allowed_domains', sa.JSON(), nullable=False),
    sa.Column('auto_provision', sa.Boolean(), nullable=False),
    sa.Column('provision_role', ROLE, nullable=False),
    sa.Column('link_by_email', sa.Boolean(), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=True),
    sa.Column('verified_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_sso_connections_partner_id_partners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_connections')),
    sa.UniqueConstraint('partner_id', name=op.f('uq_sso_connections_partner_id'))
    )
    with op.batch_alter_table('sso_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_connections_partner_id'), ['partner_id'], unique=False)

    op.create_table('sso_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id', 'user_id'], ['users.partner_id', 'users.id'], name='fk_sso_identities_user', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_sso_identities_partner_id_partners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_identities')),
    sa.UniqueConstraint('partner_id', 'issuer', 'subject', name=op.f('uq_sso_identities_partner_id_issuer_subject'))
    )
    with op.batch_alter_table('sso_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_identities_partner_id'), ['partner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sso_identities_user_id'), ['user_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f'ALTER TABLE {table} ENABLE ROW LEVEL SECURITY')
            op.execute(f'ALTER TABLE {table} FORCE ROW LEVEL SECURITY')
            op.execute(
                f'CREATE POLICY partner_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE})'
            )


def downgrade():
    with op.batch_alter_table('sso_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_identities_user_id'))
        batch_op.drop_index(batch_op.f('ix_sso_identities_partner_id'))
    op.drop_table('sso_identities')
    with op.batch_alter_table('sso_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_connections_partner_id'))
    op.drop_table('sso_connections')
