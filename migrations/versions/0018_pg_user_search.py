"""PostgreSQL: a function that finds the candidates of a user search through the trigram
indexes of 0003, which row-level security keeps the app's own queries from using

The app's role is held to the forced policies of 0006, and PostgreSQL evaluates a
non-leakproof operator such as LIKE or ILIKE only above a policy's conditions, never as an
index condition below them: every search read all of the partner's users (265 ms at 100,000).
`user_search_ids(email_pattern, name_pattern, max_rows)` runs the search's own LIKE
conditions as its owner (`SECURITY DEFINER`), where the trigram indexes serve them, and gives
back user ids only:

* of the partner in the transaction's `portal.partner_id` setting, which the app sets with
  every transaction from the partner of the request (portal/tenancy/rls.py); never a partner
  passed in. It returns nothing unless `portal.scope` is `partner` (the platform scope `all`,
  no partner, `none`: nothing);
* `max_rows` at most (NULL: all), so the search can count a few candidates cheaply.

The search keeps `users.id IN (SELECT user_search_ids(...))` inside the same partner-scoped
`User` query, still held to row-level security, with the same LIKE conditions deciding
(portal/users/search.py): the function can only narrow what a search finds, never add to it.

Fast only when the function's owner is not held to the policies itself (a superuser, or a
role with BYPASSRLS: `deploy/postgres-roles.sql` makes one and hands the function to it);
owned by the ordinary table owner it is correct but reads every user of the partner, as
before. Executable by the roles that may read `users` (now: every role granted SELECT on
it; later: `deploy/postgres-roles.sql` and the tests' grants), by no one else.

SQLite has its own index since 0017; nothing is done there.

Revision ID: 0018_pg_user_search
Revises: 0017_user_search
Create Date: 2026-12-01 00:00:00

"""

from alembic import op

revision = "0018_pg_user_search"
down_revision = "0017_user_search"
branch_labels = None
depends_on = None

SIGNATURE = "public.user_search_ids(text, text, integer)"

# A fixed search_path (pg_catalog first, pg_temp last, where the app's role may create
# tables) and every name qualified: nothing the caller creates can stand in for what the
# function uses. PL/pgSQL, not SQL: its statement is planned for each call's patterns and
# partner (a custom plan), so a small partner's search starts from its own few users and a
# selective text from the trigram indexes; an SQL function's body is planned for any values.
# ROWS 100: what it is called for, a search that finds few (the search counts first).
FUNCTION = r"""
CREATE FUNCTION public.user_search_ids(email_pattern text, name_pattern text, max_rows integer)
RETURNS SETOF integer
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 100
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT u.id
    FROM public.users AS u
    WHERE pg_catalog.current_setting('portal.scope', true) = 'partner'
      AND u.partner_id = nullif(
          pg_catalog.current_setting('portal.partner_id', true), '')::integer
      AND (u.email LIKE email_pattern ESCAPE '\'
           OR u.display_name ILIKE name_pattern ESCAPE '\')
    LIMIT max_rows;
END
$$
"""

# The roles granted SELECT on users now (the app's role of a deployment being upgraded).
READERS = """
SELECT DISTINCT a.grantee::regrole::text
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = 'public.users'::regclass AND a.privilege_type = 'SELECT'
  AND a.grantee <> 0 AND a.grantee <> c.relowner
"""


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    for (role,) in bind.exec_driver_sql(READERS).fetchall():
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {role}")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
