"""The partner policy: who may do what, read once per request from the partner's settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, abort, g
from flask_login import current_user
from sqlalchemy import select

from portal.extensions import db
from portal.roles.models import Role, RoleSetting, RoleTransition
from portal.roles.permissions import (
    DEFAULT_LABELS,
    DEFAULT_PERMISSIONS,
    Permission,
    default_transitions,
)
from portal.tenancy.configuration import derived
from portal.users.models import User, UserStatus


@dataclass(frozen=True)
class RoleConfig:
    role: Role
    enabled: bool
    label: str
    permissions: frozenset[Permission]


@dataclass(frozen=True)
class PartnerPolicy:
    """A partner's roles, their permissions and the allowed role transitions."""

    roles: dict[Role, RoleConfig]
    transitions: dict[tuple[Role, Role], Role]

    def allows(self, user: Any, permission: Permission | str) -> bool:
        if not isinstance(user, User) or user.status != UserStatus.ACTIVE:
            return False
        return Permission(permission) in self.roles[user.role].permissions

    def label(self, role: Role) -> str:
        return self.roles[role].label

    def enabled_roles(self) -> list[Role]:
        return [r for r in Role if self.roles[r].enabled]

    def transition_problem(self, actor: User, target: User, to: Role) -> str | None:
        """Why `actor` may not move `target` to role `to`, or None when allowed."""
        if actor.id == target.id:
            return "Nobody can change their own role."
        if not self.allows(actor, Permission.USERS_EDIT_ROLE):
            return "You may not change roles."
        if target.role == to:
            return f"The user already has the role {self.label(to)}."
        if not self.roles[to].enabled:
            return f"The role {self.label(to)} is not enabled."
        min_role = self.transitions.get((target.role, to))
        if min_role is None:
            return f"Changing from {self.label(target.role)} to {self.label(to)} is not allowed."
        if actor.role.rank < min_role.rank:
            return f"Only {self.label(min_role)} or higher may make this change."
        return None

    def targets_for(self, actor: User, target: User) -> list[Role]:
        return [r for r in Role if self.transition_problem(actor, target, r) is None]


def default_policy() -> PartnerPolicy:
    roles = {r: RoleConfig(r, True, DEFAULT_LABELS[r], DEFAULT_PERMISSIONS[r]) for r in Role}
    return PartnerPolicy(roles=roles, transitions=default_transitions())


def load_policy() -> PartnerPolicy:
    """The current partner's policy from the database (rows absent → catalogue defaults)."""
    settings = db.session.execute(select(RoleSetting)).scalars().all()
    if not settings:
        return default_policy()
    roles = {r: default_policy().roles[r] for r in Role}
    for s in settings:
        perms = frozenset(
            Permission(p) for p in s.permissions if p in Permission._value2member_map_
        )
        roles[s.role] = RoleConfig(s.role, s.enabled, s.label, perms)
    edges = db.session.execute(select(RoleTransition)).scalars().all()
    return PartnerPolicy(
        roles=roles, transitions={(e.from_role, e.to_role): e.min_role for e in edges}
    )


def current_policy() -> PartnerPolicy:
    """Read once per request from this process's copy for the partner's configuration
    version (the database when the version changed), so a change applies on the very next
    request in every process."""
    if "policy" not in g:
        g.policy = derived("policy", load_policy)
    return g.policy


def can(permission: Permission | str) -> bool:
    """Template and view helper: may the logged-in user do this?"""
    if g.get("partner") is None:
        return False
    # The user itself, not Flask-Login's proxy: `allows` reads it three times, and the header
    # asks a dozen times a page.
    return current_policy().allows(current_user._get_current_object(), permission)


def requires(permission: Permission | str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: 403 unless the logged-in partner user holds `permission`."""
    Permission(permission)  # a typo fails at import time, not at request time

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not can(permission):
                abort(403, "You do not have permission to do this.")
            return view(*args, **kwargs)

        wrapped.required_permission = Permission(permission)  # type: ignore[attr-defined]
        return wrapped

    return decorator


def init_app(app: Flask) -> None:
    app.jinja_env.globals["can"] = can
    app.jinja_env.globals["current_policy"] = current_policy
    # `links | select("permitted")` keeps (permission, ...) tuples the user may use.
    app.jinja_env.tests["permitted"] = lambda item: can(item[0])
