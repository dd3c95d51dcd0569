"""composite foreign keys: a row can only point at a row of its own partner

Every reference from one tenant table to another becomes (partner_id, x_id) →
parent(partner_id, id), so the database itself refuses a row of partner A that points at a
user, plan or subscription of partner B. Existing rows are kept; the upgrade stops, naming the
rows, if any reference already crosses partners (nothing here would choose which side is
right).

Revision ID: 0008_same_partner_keys
Revises: 0007_user_version
Create Date: 2026-11-30 15:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008_same_partner_keys'
down_revision = '0007_user_version'
branch_labels = None
depends_on = None

PARENTS = ('users', 'plans', 'subscriptions')

# (table, column, parent, old constraint, new constraint, ON DELETE now, ON DELETE before)
REFERENCES = (
    ('user_sessions', 'user_id', 'users',
     'fk_user_sessions_user_id_users', 'fk_user_sessions_user', 'CASCADE', 'CASCADE'),
    ('user_sessions', 'impersonator_id', 'users',
     'fk_user_sessions_impersonator_id_users', 'fk_user_sessions_impersonator', None, 'SET NULL'),
    ('user_sessions', 'revoked_by_id', 'users',
     'fk_user_sessions_revoked_by_id_users', 'fk_user_sessions_revoked_by', None, 'SET NULL'),
    ('action_tokens', 'user_id', 'users',
     'fk_action_tokens_user_id_users', 'fk_action_tokens_user', 'CASCADE', 'CASCADE'),
    ('action_tokens', 'created_by_id', 'users',
     'fk_action_tokens_created_by_id_users', 'fk_action_tokens_created_by', None, 'SET NULL'),
    ('subscriptions', 'user_id', 'users',
     'fk_subscriptions_user_id_users', 'fk_subscriptions_user', 'CASCADE', 'CASCADE'),
    ('subscriptions', 'plan_id', 'plans',
     'fk_subscriptions_plan_id_plans', 'fk_subscriptions_plan', 'RESTRICT', 'RESTRICT'),
    ('subscription_events', 'subscription_id', 'subscriptions',
     'fk_subscription_events_subscription_id_subscriptions',
     'fk_subscription_events_subscription', 'CASCADE', 'CASCADE'),
    ('subscription_events', 'actor_id', 'users',
     'fk_subscription_events_actor_id_users', 'fk_subscription_events_actor', None, 'SET NULL'),
    ('subscription_events', 'on_behalf_of_id', 'users',
     'fk_subscription_events_on_behalf_of_id_users', 'fk_subscription_events_on_behalf_of',
     None, 'SET NULL'),
)


def _crossing_rows() -> list[str]:
    """References that already point into another partner: (table.column, row id)."""
    bind = op.get_bind()
    found = []
    for table, column, parent, *_ in REFERENCES:
        rows = bind.execute(
            sa.text(
                f'SELECT t.id FROM {table} t JOIN {parent} p ON p.id = t.{column} '
                f'WHERE p.partner_id <> t.partner_id'
            )
        ).scalars().all()
        found += [f'{table}.{column} of row {row}' for row in rows]
    return found


def upgrade():
    crossing = _crossing_rows()
    if crossing:
        raise RuntimeError(
            'rows point into another partner; fix them before upgrading: ' + ', '.join(crossing)
        )
    for parent in PARENTS:
        with op.batch_alter_table(parent) as batch_op:
            batch_op.create_unique_constraint(f'uq_{parent}_partner_id_id', ['partner_id', 'id'])
    for table in dict.fromkeys(r[0] for r in REFERENCES):
        with op.batch_alter_table(table) as batch_op:
            for _table, column, parent, old, new, ondelete, _before in REFERENCES:
                if _table != table:
                    continue
                batch_op.drop_constraint(old, type_='foreignkey')
                batch_op.create_foreign_key(
                    new, parent, ['partner_id', column], ['partner_id', 'id'], ondelete=ondelete
                )


def downgrade():
    for table in dict.fromkeys(r[0] for r in REFERENCES):
        with op.batch_alter_table(table) as batch_op:
            for _table, column, parent, old, new, _ondelete, before in REFERENCES:
                if _table != table:
                    continue
                batch_op.drop_constraint(new, type_='foreignkey')
                batch_op.create_foreign_key(old, parent, [column], ['id'], ondelete=before)
    for parent in PARENTS:
        with op.batch_alter_table(parent) as batch_op:
            batch_op.drop_constraint(f'uq_{parent}_partner_id_id', type_='unique')
