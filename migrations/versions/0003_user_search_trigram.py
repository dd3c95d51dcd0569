"""PostgreSQL: trigram indexes so substring search of users stays fast at 100,000 users

Revision ID: 0003_user_search_trigram
Revises: 0002_roles_tokens_outbox
Create Date: 2026-11-26 17:40:00

SQLite has no such index type; there the search scans one partner's rows (see benchmarks/).
"""

from alembic import op

revision = "0003_user_search_trigram"
down_revision = "0002_roles_tokens_outbox"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_users_email_trgm ON users USING gin (email gin_trgm_ops)")
    op.execute(
        "CREATE INDEX ix_users_display_name_trgm ON users USING gin (display_name gin_trgm_ops)"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_users_display_name_trgm")
    op.execute("DROP INDEX IF EXISTS ix_users_email_trgm")
