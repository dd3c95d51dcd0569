"""feature settings; self sign-up becomes a feature

Revision ID: 0005_feature_settings
Revises: 0004_plans_subscriptions
Create Date: 2026-11-26 17:50:11.476127

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_feature_settings'
down_revision = '0004_plans_subscriptions'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('feature_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=True),
    sa.Column('lock', sa.Enum('none', 'on', 'off', name='lock', native_enum=False, length=32), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_feature_settings_partner_id_partners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feature_settings')),
    sa.UniqueConstraint('partner_id', 'key', name=op.f('uq_feature_settings_partner_id_key'))
    )
    with op.batch_alter_table('feature_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feature_settings_partner_id'), ['partner_id'], unique=False)

    # Self sign-up was a plain partner flag; it becomes the partner's switch of the feature.
    op.execute(
        "INSERT INTO feature_settings (partner_id, key, enabled, lock, updated_at) "
        "SELECT id, 'self_signup', self_signup, 'none', CURRENT_TIMESTAMP FROM partners "
        "WHERE self_signup"
    )
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.drop_column('self_signup')


def downgrade():
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('self_signup', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(
        "UPDATE partners SET self_signup = true WHERE id IN (SELECT partner_id FROM "
        "feature_settings WHERE key = 'self_signup' AND enabled)"
    )

    with op.batch_alter_table('feature_settings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feature_settings_partner_id'))

    op.drop_table('feature_settings')
