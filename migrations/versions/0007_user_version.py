"""users.version: compare-and-set on every write to a user

Revision ID: 0007_user_version
Revises: 0006_row_level_security
Create Date: 2026-11-30 13:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007_user_version'
down_revision = '0006_row_level_security'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))


def downgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('version')
