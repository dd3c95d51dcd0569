"""SQLite: a trigram full-text index of users' emails and display names, kept in step by
triggers, so the admin list's substring search stops reading every user of a partner

The index is contentless (`content=''`): it keeps only the trigrams of each user's email,
display name and partner (`#<partner_id>#`), never a copy of the rows, and answers only
with user ids. The search joins those ids back to the partner-scoped users query, which
applies its own partner filter and the same LIKE conditions as before
(`portal/users/search.py`).

PostgreSQL has its trigram indexes since 0003; nothing is done there.

Keep in mind: a later migration that rebuilds `users` on SQLite (`batch_alter_table`) drops
these triggers with the old table; it must create them again (TRIGGERS below), or the index
falls behind. `tests/test_user_search.py` checks the triggers of the head schema.

Revision ID: 0017_user_search
Revises: 0016_perf
Create Date: 2026-11-30 19:30:00

"""

from alembic import op

revision = "0017_user_search"
down_revision = "0016_perf"
branch_labels = None
depends_on = None

# What the index holds for a users row: the values the triggers pass for `new` and `old`.
_NEW = "new.id, new.email, new.display_name, '#' || new.partner_id || '#'"
_OLD = "'delete', old.id, old.email, old.display_name, '#' || old.partner_id || '#'"
_COLUMNS = "rowid, email, display_name, partner"

TRIGGERS = {
    "users_search_insert": (
        f"CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN "
        f"INSERT INTO users_search ({_COLUMNS}) VALUES ({_NEW}); END"
    ),
    "users_search_update": (
        "CREATE TRIGGER users_search_update "
        "AFTER UPDATE OF id, email, display_name, partner_id ON users BEGIN "
        f"INSERT INTO users_search (users_search, {_COLUMNS}) VALUES ({_OLD}); "
        f"INSERT INTO users_search ({_COLUMNS}) VALUES ({_NEW}); END"
    ),
    "users_search_delete": (
        f"CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN "
        f"INSERT INTO users_search (users_search, {_COLUMNS}) VALUES ({_OLD}); END"
    ),
}


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    # columnsize=0: no per-row sizes (they serve ranking, which the search does not use).
    op.execute(
        "CREATE VIRTUAL TABLE users_search USING fts5("
        "email, display_name, partner, content='', columnsize=0, tokenize='trigram')"
    )
    op.execute(
        f"INSERT INTO users_search ({_COLUMNS}) "
        "SELECT id, email, display_name, '#' || partner_id || '#' FROM users"
    )
    for statement in TRIGGERS.values():
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS users_search")
