"""unconfirmed sign-ups keep no password: whoever confirms the address chooses it

Before, a visitor chose the password when signing up, before proving the address, so anyone
could sign up someone else's address with a password of their own and wait (account
pre-hijacking). Passwords are now chosen on the confirmation page; this clears the ones that
unconfirmed sign-ups still carry: every invited account, and deactivated ones whose sign-up
was never confirmed.

Revision ID: 0009_unconfirmed_signups
Revises: 0008_same_partner_keys
Create Date: 2026-11-30 16:30:00

"""
from alembic import op


revision = '0009_unconfirmed_signups'
down_revision = '0008_same_partner_keys'
branch_labels = None
depends_on = None

SIGNED_UP_NEVER_CONFIRMED = (
    "SELECT CAST(s.target_id AS INTEGER) FROM audit_events s "
    "WHERE s.action = 'account.signup' AND s.target_type = 'users' AND NOT EXISTS ("
    " SELECT 1 FROM audit_events v WHERE v.action = 'account.signup_verified'"
    " AND v.target_type = 'users' AND v.target_id = s.target_id)"
)


def upgrade():
    op.execute(
        "UPDATE users SET password_hash = NULL WHERE password_hash IS NOT NULL AND ("
        f"status = 'invited' OR (status = 'deactivated' AND id IN ({SIGNED_UP_NEVER_CONFIRMED})))"
    )


def downgrade():
    pass  # a forgotten password cannot be restored, and was never the owner's own
