"""PostgreSQL: the users' trigram indexes take new entries at once (fastupdate off), so a
search never reads a pending list

A GIN index with `fastupdate` (the default) puts new entries in a pending list, read in full
by every search until VACUUM (or a list of gin_pending_list_limit, 4 MB) moves them into the
index. At 100,000 users that list was up to 450 pages per index: the large partner's search
read 773 pages in 15.8 ms, where the index alone takes 124 pages in 2.6 ms. A new row version
of a user (a sign-up, an edit, a sign-in's last_login_at) now updates the indexes directly:
0.29 ms a row instead of 0.08 (1,000 updates at 100,000 users), paid by the write rather than
by every search. What is pending now is moved into the indexes here.

Revision ID: 0021_search_index_pending
Revises: 0020_audit_actor_index
Create Date: 2026-12-01 13:30:00

"""

from alembic import op

revision = "0021_search_index_pending"
down_revision = "0020_audit_actor_index"
branch_labels = None
depends_on = None

INDEXES = ("ix_users_email_trgm", "ix_users_display_name_trgm")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    # The pending entries moved first, while queries on users still run: ALTER INDEX locks
    # the index (and so the planning of every query on users) until the migration commits.
    # Moved again after, for the few written in between.
    for index in INDEXES:
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
