"""A partner's configuration version, and what each process derives from it.

Role policy, feature switches and operator locks are read on every page. Each process keeps
what it derived from them (`derived()`), keyed by the partner's `config_version`, which the
one statement that starts every partner request reads with the partner. Any write to a
configuration row (a `PartnerConfiguration` model, or the partner itself) stamps a new
version in the same transaction, so a change committed by one worker is seen by every worker
on its next request: freshness is the rule, not a time to live. The version is a random stamp,
not a counter, so a partner deleted and made again under the same id never meets the values
of its predecessor.

Inside a request that changed the configuration, or took the partner's write lock to read it
as it is now, or outside a partner's request (commands, `partner_scope`), nothing is cached:
the values are read from the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, has_app_context
from sqlalchemy import event, update
from sqlalchemy.orm import ORMExecuteState, Session

from portal.extensions import db
from portal.tenancy.models import Partner, PartnerConfiguration
from portal.tenancy.scope import scoped_partner_id

T = TypeVar("T")
_VERSIONS = "partner_config_versions"
_CACHE = "portal_configuration_cache"


def new_version() -> int:
    return secrets.randbits(62)


def remember_version(partner: Partner) -> None:
    """Note the version read with the host's partner at the start of this request."""
    g.setdefault(_VERSIONS, {})[partner.id] = partner.config_version


def forget_versions() -> None:
    """From here on this request reads configuration from the database, not the cache."""
    if has_app_context():
        g.pop(_VERSIONS, None)


def derived(name: str, load: Callable[[], T]) -> T:
    """`load()` for the partner in scope, computed once per process and configuration version.

    `load` must return a value nobody changes (frozen, plain values: no ORM rows).
    """
    partner_id = scoped_partner_id()
    versions = g.get(_VERSIONS) if has_app_context() else None
    version = versions.get(partner_id) if versions and partner_id is not None else None
    if version is None:
        return load()
    session = db.session
    if any(
        isinstance(obj, (Partner, PartnerConfiguration))
        for obj in (*session.new, *session.dirty, *session.deleted)
    ):
        session.flush()  # stamps a new version, and this request reads what it wrote
        return load()
    cache: dict[tuple[str, int], tuple[int, Any]] = current_app.extensions.setdefault(_CACHE, {})
    found = cache.get((name, partner_id))
    if found is not None and found[0] == version:
        return found[1]
    value = load()
    cache[(name, partner_id)] = (version, value)
    return value


def _stamp(session: Session, partner_ids: set[int] | None) -> None:
    """A new configuration version for these partners (None: every partner)."""
    stmt = update(Partner.__table__).values(config_version=new_version())
    if partner_ids is not None:
        stmt = stmt.where(Partner.__table__.c.id.in_(sorted(partner_ids)))
    session.connection().execute(stmt)
    forget_versions()


@event.listens_for(Session, "after_flush")
def _configuration_flushed(session: Session, _context: Any) -> None:
    changed: set[int] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Partner):
            if obj in session.new or session.is_modified(obj):
                changed.add(obj.id)
        elif isinstance(obj, PartnerConfiguration) and (
            obj in session.new or obj in session.deleted or session.is_modified(obj)
        ):
            owner = getattr(obj, "partner_id", None) or scoped_partner_id()
            if owner is not None:
                changed.add(owner)
    if changed:
        _stamp(session, changed)


@event.listens_for(Session, "do_orm_execute")
def _configuration_bulk_write(state: ORMExecuteState) -> None:
    """Bulk UPDATE or DELETE of configuration rows (`delete(RoleSetting)`)."""
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is None or not issubclass(mapper.class_, PartnerConfiguration):
        return
    partner_id = scoped_partner_id()
    _stamp(state.session, {partner_id} if partner_id is not None else None)
