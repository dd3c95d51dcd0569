"""Automatic partner scoping of every ORM statement on tenant-owned models.

In a partner request the partner resolved from the host (``g.partner``) restricts every
SELECT, UPDATE and DELETE of a `TenantOwned` model and stamps every insert. Outside a partner
request (root domain, CLI) tenant-owned data is refused unless the code says so with
`partner_scope(partner)` or `unscoped()`, so a forgotten filter is an error, not a leak.

What the ORM layer cannot see through, it refuses: textual SQL (`text()`, a `table()` named
like a tenant table) run through the session needs the explicit escape hatch `raw_sql()`,
and `Session.get()` answers None for another partner's row even when the identity map holds
it. Below this layer, PostgreSQL's row-level security scopes whatever gets through
(`portal/tenancy/rls.py`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import g, has_app_context
from sqlalchemy import Table, TableClause, TextClause, event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql import visitors

from portal.extensions import PortalSession, db
from portal.tenancy.models import Site, TenantOwned

if TYPE_CHECKING:
    from portal.tenancy.models import Partner


class TenantScopeError(RuntimeError):
    """Tenant-owned data was touched with no partner in scope."""


_UNSCOPED = "tenancy_unscoped"
_RAW_SQL = "tenancy_raw_sql"
_RESOLVING = "tenancy_resolving_partner_id"
_PLATFORM = "tenancy_platform"


def scoped_partner_id() -> int | None:
    if not has_app_context():
        return None
    partner = g.get("partner")
    if partner is None:
        # While the host's partner is being resolved, with what the request presented, in
        # one statement (`resolving_partner`).
        return g.get(_RESOLVING)
    # The identity key, not `partner.id`: an expired instance would otherwise be refreshed,
    # a query issued from inside the hooks that scope queries.
    identity = inspect(partner).identity
    return identity[0] if identity else partner.id


def is_unscoped() -> bool:
    return has_app_context() and bool(g.get(_UNSCOPED))


def in_platform_scope() -> bool:
    return has_app_context() and bool(g.get(_PLATFORM))


def allows_raw_sql() -> bool:
    return has_app_context() and bool(g.get(_RAW_SQL))


# Per-request views of one partner's settings, kept in `g`; they follow the partner in scope.
# The configuration versions read at the start of the request go too: after a change, or
# under the partner's write lock, configuration is read as it is now (tenancy/configuration.py).
PARTNER_CACHES = ("policy", "feature_settings", "partner_config_versions", "navigation")


def forget_partner_caches() -> None:
    """Read the partner's settings afresh on their next use in this request."""
    for name in PARTNER_CACHES:
        g.pop(name, None)


@contextmanager
def partner_scope(partner: Partner) -> Iterator[Partner]:
    """Run a block (CLI, tests, operator actions) as if inside `partner`'s request.

    Pending changes are flushed when the scope changes, in the scope they were made in: the
    database (row-level security) accepts a partner's rows only under that partner's scope.
    """
    db.session.flush()
    previous, previous_site = g.get("partner"), g.get("site")
    previous_unscoped = g.get(_UNSCOPED)
    g.partner, g.site = partner, Site.of(partner)
    g.pop(_UNSCOPED, None)
    forget_partner_caches()
    try:
        yield partner
        db.session.flush()
    finally:
        forget_partner_caches()
        g.partner, g.site = previous, previous_site
        if previous_unscoped:
            g.setdefault(_UNSCOPED, previous_unscoped)


@contextmanager
def resolving_partner(partner_id: int) -> Iterator[None]:
    """Scope the one statement that loads the host's partner, by the id its address had when
    this process last looked it up, together with the session the request presents.

    The statement must still name the partner by its address: should the id be out of date,
    it finds the partner but none of that partner's rows, and the caller asks again.
    """
    if g.get("partner") is not None or is_unscoped():
        raise TenantScopeError("a partner is resolved only at the start of its request")
    g.setdefault(_RESOLVING, partner_id)
    try:
        yield
    finally:
        g.pop(_RESOLVING, None)


@contextmanager
def unscoped() -> Iterator[None]:
    """Explicitly read across partners (operator console, platform jobs)."""
    if scoped_partner_id() is not None:
        raise TenantScopeError("unscoped() is not allowed inside a partner request")
    outermost = not g.get(_UNSCOPED)
    g.setdefault(_UNSCOPED, True)
    try:
        yield
    finally:
        if outermost:
            g.pop(_UNSCOPED, None)


@contextmanager
def platform_scope() -> Iterator[None]:
    """Leave the partner's scope for a block that reaches the platform's own rows (partner_id
    NULL: what operators did), also from inside a partner's request: erasure must find the
    operator's audit rows that name the person.

    Inside, every ORM statement on a tenant-owned model is restricted to `partner_id IS NULL`
    (no partner's row is read, changed or made there; `Session.get()` of one answers None)
    and textual SQL is refused. PostgreSQL's policies know no such scope, so the database
    sees `all` here: the ORM layer alone holds the block to the platform's rows.

    Pending changes are flushed first, in the scope they were made in (as `partner_scope`).
    """
    db.session.flush()
    previous = g.get("partner")
    previous_unscoped, previous_platform = g.get(_UNSCOPED), g.get(_PLATFORM)
    g.partner = None
    g.setdefault(_UNSCOPED, True)
    g.setdefault(_PLATFORM, True)
    forget_partner_caches()
    try:
        yield
        db.session.flush()
    finally:
        forget_partner_caches()
        g.partner = previous
        if not previous_unscoped:
            g.pop(_UNSCOPED, None)
        if not previous_platform:
            g.pop(_PLATFORM, None)


@contextmanager
def raw_sql() -> Iterator[None]:
    """The escape hatch for textual SQL through the session, which the ORM layer cannot scope.

    Only the database layer protects what runs in here: PostgreSQL's row-level security still
    limits it to the partner in scope (or to nothing outside one, unless `unscoped()`); on
    SQLite nothing does. Every use is a place to review.
    """
    outermost = not g.get(_RAW_SQL)
    g.setdefault(_RAW_SQL, True)
    try:
        yield
    finally:
        if outermost:
            g.pop(_RAW_SQL, None)


_TENANT_TABLES: dict[int, tuple[frozenset[Table], frozenset[str]]] = {}


def _tenant_tables() -> frozenset[Table]:
    return _tenant_catalogue()[0]


def _tenant_catalogue() -> tuple[frozenset[Table], frozenset[str]]:
    """The tenant tables and their names in lower case, worked out once per set of mappers
    (every statement asks; models are all registered before the first one)."""
    mappers = db.Model.registry.mappers
    found = _TENANT_TABLES.get(len(mappers))
    if found is None:
        tables = frozenset(m.local_table for m in mappers if issubclass(m.class_, TenantOwned))
        found = (tables, frozenset(t.name.lower() for t in tables))
        _TENANT_TABLES.clear()
        _TENANT_TABLES[len(mappers)] = found
    return found


def _opaque(statement: Any) -> str | None:
    """What in `statement` the ORM layer cannot scope: textual SQL, or any table object that
    stands for a tenant table without being the mapped one (a lightweight `table()`, a
    `Table` of another MetaData such as reflection makes, a name in other letter case: the
    databases compare table names without case). None when it sees every table it reads."""
    if isinstance(statement, TextClause):
        return "textual SQL"
    tenant, tenant_names = _tenant_catalogue()
    for element in visitors.iterate(statement):
        if isinstance(element, TextClause):
            return "a textual SQL fragment"
        if (
            isinstance(element, TableClause)
            and element not in tenant
            and element.name.lower() in tenant_names
        ):
            return f"a table object named {element.name} that is not the mapped one"
    return None


def _tenant_tables_read(state: ORMExecuteState) -> tuple[bool, frozenset[Table]]:
    """Whether the statement touches tenant data, and the tenant tables it names bare.

    `select(func.count()).select_from(User)` names no mapper but reads a tenant table through
    the ORM entity, which the loader criteria cover. `select(User.__table__.c.id)` names the
    bare table, which no loader criteria can reach: such statements are refused in a partner's
    scope rather than left unfiltered.
    """
    tenant = _tenant_tables()
    named: set[Table] = set()
    covered = {m.local_table for m in state.all_mappers}
    for element in visitors.iterate(state.statement):
        entity = element._annotations.get("parententity") if element._annotations else None
        if entity is not None:
            covered.add(entity.mapper.local_table)
        if isinstance(element, Table) and element in tenant:
            named.add(element)
    touches = bool(named) or any(issubclass(m.class_, TenantOwned) for m in state.all_mappers)
    return touches, frozenset(t for t in named if t not in covered)


# What `_scope_statement` found out about a statement object, for statements built once and
# run on every request (the partner and session lookup): the same object, the same answer.
_SEEN: weakref.WeakKeyDictionary[Any, tuple[str | None, bool, frozenset[Table]]] = (
    weakref.WeakKeyDictionary()
)


def _analysis(state: ORMExecuteState) -> tuple[str | None, bool, frozenset[Table]]:
    statement = state.statement
    found = _SEEN.get(statement)
    if found is None:
        found = (_opaque(statement), *_tenant_tables_read(state))
        _SEEN[statement] = found
    return found


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    opaque, touches, bare = _analysis(state)
    if opaque is not None and (in_platform_scope() or not allows_raw_sql()):
        raise TenantScopeError(
            f"{opaque} through the session cannot be scoped to a partner: use the ORM "
            "models, or wrap it in raw_sql() and check it yourself (never in platform_scope())"
        )
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria added to the parent statement propagate to these loads
    if not touches:
        return
    partner_id = scoped_partner_id()
    if partner_id is None:
        if in_platform_scope():
            _restrict(state, bare, None)
        elif not is_unscoped():
            raise TenantScopeError("tenant-owned data queried with no partner in scope")
        return
    _restrict(state, bare, partner_id)


# The scoped copy of each statement, per partner (None: the platform's rows), for as long as
# the statement lives: a statement built once and run on every request (the session lookup,
# a page's list) is then the same object each time, and SQLAlchemy works out its cache key
# once per partner and process instead of on every run (a tenth of a page's time).
_SCOPED: weakref.WeakKeyDictionary[Any, dict[int | None, Any]] = weakref.WeakKeyDictionary()


def _restrict(state: ORMExecuteState, bare: frozenset[Table], partner_id: int | None) -> None:
    """Hold every tenant-owned entity of the statement (subqueries, CTEs and each part of a
    UNION included) to `partner_id`'s rows, or with None to the platform's (no partner);
    bare tenant tables, which no criteria can reach, are refused."""
    if bare:
        names = ", ".join(sorted(t.name for t in bare))
        raise TenantScopeError(f"query the mapped models, not the bare tables ({names})")
    statement = state.statement
    per_partner = _SCOPED.get(statement)
    if per_partner is None:
        per_partner = _SCOPED.setdefault(statement, {})
    scoped = per_partner.get(partner_id)
    if scoped is None:
        scoped = per_partner[partner_id] = statement.options(
            with_loader_criteria(TenantOwned, _criteria(partner_id), include_aliases=True)
        )
    state.statement = scoped


def _criteria(partner_id: int | None) -> Any:
    if partner_id is None:
        return lambda cls: cls.partner_id.is_(None)
    return lambda cls: cls.partner_id == partner_id


def _screen_get(found: Any) -> Any:
    """`Session.get()` of a tenant row: another partner's is missing; no partner is an error."""
    if not isinstance(found, TenantOwned):
        return found
    partner_id = scoped_partner_id()
    if partner_id is None:
        if in_platform_scope():
            return found if found.partner_id is None else None
        if is_unscoped():
            return found
        raise TenantScopeError("tenant-owned data loaded with no partner in scope")
    return found if found.partner_id == partner_id else None


PortalSession.screen_get = staticmethod(_screen_get)


@event.listens_for(TenantOwned, "init", propagate=True)
def _stamp_on_creation(target: TenantOwned, _args: Any, kwargs: dict[str, Any]) -> None:
    """A row made inside a partner's scope belongs to that partner, whenever it is flushed."""
    partner_id = scoped_partner_id()
    target._created_in_partner = partner_id  # type: ignore[attr-defined]
    if partner_id is not None and "partner_id" not in kwargs and "partner" not in kwargs:
        kwargs["partner_id"] = partner_id


@event.listens_for(Session, "before_flush")
def _stamp_partner(session: Session, _context: Any, _instances: Any) -> None:
    partner_id = scoped_partner_id()
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        made_in = getattr(obj, "_created_in_partner", partner_id)
        platform_row = getattr(obj, "allows_platform_rows", False)
        if obj.partner_id is None and made_in is None and platform_row:
            continue  # a platform row (operator action) stays partner-less, wherever it is flushed
        owner = obj.partner_id
        if owner is None:
            owner = getattr(getattr(obj, "partner", None), "id", None)
        if partner_id is None:
            if owner is None and getattr(obj, "allows_platform_rows", False):
                continue
            if owner is not None and owner == getattr(obj, "_created_in_partner", None):
                continue  # made inside that partner's scope, flushed after it ended
            if owner is None or not is_unscoped() or in_platform_scope():
                raise TenantScopeError(f"{type(obj).__name__} inserted with no partner in scope")
            continue
        if owner is not None and owner != partner_id:
            raise TenantScopeError(f"{type(obj).__name__} inserted for another partner")
        obj.partner_id = partner_id
    for obj in session.dirty:
        if isinstance(obj, TenantOwned) and inspect(obj).attrs.partner_id.history.deleted:
            raise TenantScopeError(f"{type(obj).__name__} cannot move to another partner")
