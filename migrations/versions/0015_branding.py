"""branding: each partner's logo, re-encoded, in the database

A tenant table with the forced row-level security policy of migration 0006 on PostgreSQL;
one logo per partner. The rest of the branding (name, colours, base theme, support contact,
the logo's hash) lives in partners.theme_settings, which needs no new column.

Revision ID: 0015_branding
Revises: 0014_privacy
Create Date: 2026-11-30 16:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0015_branding'
down_revision = '0014_privacy'
branch_labels = None
depends_on = None

RULE = (
    "(SELECT current_setting('portal.scope', true)) = 'all' "
    "OR partner_id = (SELECT nullif(current_setting('portal.partner_id', true), '')::integer)"
)


def upgrade():
    op.create_table('partner_logos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_partner_logos_partner_id_partners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_logos')),
    sa.UniqueConstraint('partner_id', name=op.f('uq_partner_logos_partner_id'))
    )
    with op.batch_alter_table('partner_logos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partner_logos_partner_id'), ['partner_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE partner_logos ENABLE ROW LEVEL SECURITY')
        op.execute('ALTER TABLE partner_logos FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY partner_isolation ON partner_logos USING ({RULE}) WITH CHECK ({RULE})'
        )


def downgrade():
    with op.batch_alter_table('partner_logos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partner_logos_partner_id'))
    op.drop_table('partner_logos')
