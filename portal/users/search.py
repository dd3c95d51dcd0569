"""Substring search of a partner's users by email or display name.

What matches is always the plain condition (`matches`): the email contains the text, or the
display name does, ignoring ASCII case, the text taken literally. A trigram index finds the
candidates first, so a search reads a few rows instead of every user of the partner; the
plain condition then decides, in the same partner-scoped `User` query, so the index only ever
narrows, never changes, what a search finds:

* on SQLite, the FTS5 table `users_search` (migration 0017);
* on PostgreSQL, the trigram GIN indexes of 0003, through the function `user_search_ids`
  (migration 0018). The app's role is held to row-level security, under which PostgreSQL
  never uses LIKE (not leakproof) as an index condition; the function runs the same LIKE
  conditions as its owner, for the partner of the transaction's `portal.partner_id` only,
  and gives back ids. It answers only in a partner's scope (`portal.scope` = `partner`), so
  a search outside one (none in the app today) reads the rows as before.

The index pays while the candidates are few. A text that half the partner's users contain
(`person`, the partner's own mail domain) is answered faster by reading the partner's rows
in the order of the page, as before. The list tries the index first, reading at most `FEW`
candidates, and its page says how many it read (`found_count`): fewer, and the page is the
answer, found with one search of the index; else the list reads the rows. A page with no row
to say so counts the candidates on their own (`candidate_count`), up to `FEW` only.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy import CTE, ColumnElement, Select, func, or_, select
from sqlalchemy.sql import operators

from portal.extensions import db
from portal.tenancy.scope import scoped_partner_id
from portal.users.models import User

# The trigram index answers texts of at least three characters; shorter ones are rare, and
# match many users anyway.
SHORTEST_INDEXED = 3
# Above this many candidates the partner's rows are read in order instead.
FEW = 1000

# The index, declared for SQLAlchemy so that statements use it as a table object, never as
# text (which the tenancy layer refuses in a partner's scope). Safe to read in one: it holds
# no rows of its own, only trigrams of users' columns, and gives back user ids, which are
# only ever used as `User.id IN (...)` inside a query of the mapped `User`, which the
# tenancy layer restricts to the partner in scope like any other. Its own metadata: no
# model, and no part of `db.metadata` (migrations, autogenerate, the tests' clean-up).
users_search = sa.Table(
    "users_search",
    sa.MetaData(),
    sa.Column("rowid", sa.Integer),
    sa.Column("users_search", sa.Text),  # FTS5's column named like its table: MATCH on it
)


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with LIKE's wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def matches() -> ColumnElement[bool]:
    """The users whose email or display name contains the text (emails are stored lowercase);
    the text comes in `params`."""
    return or_(
        User.email.like(sa.bindparam("q_email"), escape="\\"),
        User.display_name.ilike(sa.bindparam("q_name"), escape="\\"),
    )


def dialect() -> str:
    """The database's kind, which decides how the index is reached (`sqlite`, `postgresql`)."""
    return db.session.get_bind().dialect.name


def indexed(text: str) -> bool:
    """Whether the trigram index can find the candidates for `text` here (FTS5 refuses a
    query holding a NUL character as an unterminated string: such a text is searched the
    plain way; PostgreSQL's function answers in a partner's scope only)."""
    if len(text) < SHORTEST_INDEXED or "\x00" in text:
        return False
    kind = dialect()
    return kind == "sqlite" or (kind == "postgresql" and scoped_partner_id() is not None)


def params(text: str) -> dict[str, object]:
    """The values of a search for `text`, for the statements made with the functions here
    (built once, bound per search)."""
    pattern = contains_pattern(text)
    values: dict[str, object] = {"q_email": pattern.lower(), "q_name": pattern}
    if indexed(text):
        values["few"] = FEW
        if dialect() == "sqlite":
            values["q_index"] = _index_query(text)
    return values


def _phrase(text: str) -> str:
    """`text` as an FTS5 string: taken literally, whatever it holds (AND, NEAR, *, ^, quotes)."""
    return '"' + text.replace('"', '""') + '"'


def _index_query(text: str) -> str:
    """The FTS5 query for the candidates: in the partner in scope, the email containing the
    text as the plain condition lowercases it, or the display name containing it.

    The index folds case itself (more widely than LIKE does: the plain condition decides).
    The partner is only a shortcut through the index for a partner with a few of the many
    users who contain the text; the users query filters by partner whatever the index says.

    An ASCII text is the same phrase in both columns once the index has folded its case, and
    is looked up in both at once (`{email display_name}`): each of its trigrams' entries read
    once, not once per column (half the index's time at 100,000 users). Another text is looked
    up in the email lowercased as the address was stored (Python's lowercasing and the
    index's folding differ outside ASCII).
    """
    if text.isascii():
        either = f"{{email display_name}} : {_phrase(text)}"
    else:
        either = f"(email : {_phrase(text.lower())} OR display_name : {_phrase(text)})"
    partner_id = scoped_partner_id()
    return either if partner_id is None else f'partner : "#{partner_id}#" AND {either}'


def _candidates(kind: str, limit: ColumnElement | None) -> Select:
    """The candidates' ids, `limit` at most (None: all)."""
    if kind == "postgresql":
        # The partner is the transaction's own (the function reads `portal.partner_id`);
        # the limit is the function's, so that it stops reading there.
        # In FROM, not in the select list: the planner then reads the function once (a
        # function scan), where a set-returning call in the select list would run again for
        # every user the semi-join tries.
        found = func.user_search_ids(
            sa.bindparam("q_email"), sa.bindparam("q_name"), sa.null() if limit is None else limit
        ).table_valued(sa.column("id", sa.Integer), name="candidate")
        return select(found.render_derived().c.id)
    stmt = select(users_search.c.rowid).where(
        users_search.c.users_search.match(sa.bindparam("q_index"))
    )
    return stmt if limit is None else stmt.limit(limit)


def among_candidates(kind: str, *, first: bool = False) -> ColumnElement[bool]:
    """Users the index finds for the text: every user `matches()` holds for, and maybe more
    (on PostgreSQL exactly those, of the partner in scope). `first`: among its first `FEW`
    candidates only, which are all of them when `found_count`, read in the same statement,
    is under `FEW` (a count made in an earlier statement cannot say so: users may have been
    added since)."""
    return User.id.in_(select(_found(kind, first).c[0]))


def found_count(kind: str) -> ColumnElement[int]:
    """A column: how many candidates `among_candidates(first=True)` read, `FEW` at most;
    `FEW` on PostgreSQL when the function may not be used (see `candidate_count`)."""
    return _counted_if_usable(kind, select(func.count()).select_from(_found(kind, True)))


@lru_cache(maxsize=8)
def _found(kind: str, first: bool) -> CTE:
    """The candidates (with `first`, `FEW` at most), a common table expression, materialized:
    a list reads them for its page, its count and how many there were, and the index is
    searched once for all three. One object per kind: a statement naming it twice names one
    table."""
    candidates = _candidates(kind, sa.bindparam("few", type_=sa.Integer) if first else None)
    if kind == "postgresql" and first:
        # Never run when it may not be used (`candidate_count`): a condition on no row, which
        # PostgreSQL decides once, before the function would be called. (Without `first` the
        # caller has asked `candidate_count` first, which says so.)
        candidates = candidates.where(_function_escapes_policies())
    return candidates.cte("candidates").prefix_with("MATERIALIZED")


def candidate_count(kind: str) -> ColumnElement[int]:
    """How many candidates the index finds for the text, counted up to `FEW` only.

    On PostgreSQL `FEW` itself (read as before) unless the function's owner escapes row-level
    security: owned by a role held to the policies it is correct, but reads every user of the
    partner just as the plain search does, and would only add to its time. The count is not
    run then (a subquery in the CASE's other branch).
    """
    few = sa.bindparam("few", type_=sa.Integer)
    return _counted_if_usable(
        kind, select(func.count()).select_from(_candidates(kind, few).subquery())
    )


def _counted_if_usable(kind: str, count: Select) -> ColumnElement[int]:
    """`count` as a column; on PostgreSQL `FEW` instead (the count not run: the CASE's other
    branch) when the function may not be used."""
    counted = count.scalar_subquery()
    if kind != "postgresql":
        return counted
    few = sa.bindparam("few", type_=sa.Integer)
    return sa.case((_function_escapes_policies(), counted), else_=few)


# The catalog, for `_function_escapes_policies` (no tenant data; their own metadata).
_pg_proc = sa.table(
    "pg_proc",
    sa.column("proname"),
    sa.column("pronamespace"),
    sa.column("proowner"),
    schema="pg_catalog",
)
_pg_namespace = sa.table(
    "pg_namespace", sa.column("oid"), sa.column("nspname"), schema="pg_catalog"
)
_pg_roles = sa.table(
    "pg_roles",
    sa.column("oid"),
    sa.column("rolsuper"),
    sa.column("rolbypassrls"),
    schema="pg_catalog",
)


def _function_escapes_policies() -> ColumnElement[bool]:
    """Whether `public.user_search_ids` is owned by a superuser or a BYPASSRLS role."""
    return sa.exists().where(
        _pg_proc.c.proname == "user_search_ids",
        _pg_proc.c.pronamespace == _pg_namespace.c.oid,
        _pg_namespace.c.nspname == "public",
        _pg_proc.c.proowner == _pg_roles.c.oid,
        or_(_pg_roles.c.rolsuper, _pg_roles.c.rolbypassrls),
    )


def unindexed(column: ColumnElement, kind: str) -> ColumnElement:
    """`column` as an expression of the same value (SQLite's unary plus), for ORDER BY.

    Sorting the few candidates by it, SQLite looks them up by id and sorts them, instead of
    walking the partner's users in the order of the column's index looking for them.
    PostgreSQL has no unary plus for text, and needs none: it plans with the function's
    estimate of few rows (ROWS 100) and sorts them.
    """
    if kind != "sqlite":
        return column
    return sa.sql.expression.UnaryExpression(column, operator=operators.custom_op("+"))


def purge_replaced_entries() -> None:
    """Rewrite SQLite's index so the trigrams of replaced or deleted values leave its storage.

    A changed or deleted user only marks its old entry deleted; the old trigrams stay in the
    index's shadow tables until FTS5 merges their segments. Erasure cannot leave them there.
    The merge rewrites the whole index (erasures are rare).
    """
    if db.engine.dialect.name != "sqlite":
        return
    db.session.flush()  # the triggers mark the old entries first
    db.session.execute(sa.insert(users_search).values(users_search="optimize"))
