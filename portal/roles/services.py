"""Changing a partner's role configuration, refused when it would lock anyone in or out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select

from portal.audit.services import record_audit
from portal.exceptions import Invalid
from portal.extensions import db
from portal.roles.models import Role, RoleSetting, RoleTransition
from portal.roles.permissions import ADMIN_FLOOR, Permission
from portal.roles.policy import PartnerPolicy, RoleConfig, current_policy
from portal.tenancy.context import current_partner
from portal.tenancy.scope import forget_partner_caches
from portal.text import counted
from portal.unit_of_work import lock_partner
from portal.users.models import User, UserStatus


class RoleConfigError(Invalid):
    """A role configuration that cannot be saved, with the reason."""


@dataclass(frozen=True)
class RoleInput:
    enabled: bool
    label: str
    permissions: frozenset[Permission]


def _users_per_role() -> dict[Role, int]:
    rows = db.session.execute(
        select(User.role, func.count(User.id))
        .where(User.status != UserStatus.DEACTIVATED)
        .group_by(User.role)
    ).all()
    return {role: count for role, count in rows}


def holders_of_disabled_roles() -> dict[Role, int]:
    """How many users (not deactivated) hold each disabled role: they keep its permissions
    until an admin moves them, which the roles page says after saving."""
    policy = current_policy()
    return {
        role: count
        for role, count in _users_per_role().items()
        if count and not policy.roles[role].enabled
    }


def _stranded(enabled: dict[Role, bool], edges: dict[tuple[Role, Role], Role]) -> list[str]:
    """Messages for every disabled role whose users could never be moved to an enabled one."""
    problems = []
    counts = _users_per_role()
    for role in Role:
        if enabled[role] or not counts.get(role):
            continue
        if not any(frm == role and enabled[to] for frm, to in edges):
            problems.append(
                f"{counted(counts[role], 'user')} {'has' if counts[role] == 1 else 'have'} "
                f"the role {role.value}, which would be disabled "
                f"with no allowed transition to an enabled role."
            )
    return problems


def _check(enabled: dict[Role, bool], edges: dict[tuple[Role, Role], Role]) -> None:
    if not enabled[Role.ADMIN]:
        raise RoleConfigError("The admin role cannot be disabled.")
    default = Role(current_partner.default_role)
    if not enabled[default]:
        raise RoleConfigError(
            f"{default.value} is the role new users get; choose another default role first."
        )
    problems = _stranded(enabled, edges)
    if problems:
        raise RoleConfigError(" ".join(problems))


def save_roles(roles: dict[Role, RoleInput]) -> PartnerPolicy:
    """Replace the enabled flags, labels and permissions of every role."""
    lock_partner()
    before = current_policy()
    for role, item in roles.items():
        if not 1 <= len(item.label.strip()) <= 40:
            raise RoleConfigError(f"The label of {role.value} must be 1 to 40 characters.")
    missing = ADMIN_FLOOR - roles[Role.ADMIN].permissions
    if missing:
        names = ", ".join(sorted(p.value for p in missing))
        raise RoleConfigError(f"Admins must keep these permissions: {names}.")
    _check({r: roles[r].enabled for r in Role}, before.transitions)
    _write(roles, before.transitions)
    record_audit(
        "roles.update",
        target=("partner", current_partner.id),
        details={
            r.value: {
                "enabled": roles[r].enabled,
                "label": roles[r].label.strip(),
                "permissions": sorted(p.value for p in roles[r].permissions),
            }
            for r in Role
            if before.roles[r] != _as_config(r, roles[r])
        },
    )
    return current_policy()


def save_transitions(edges: dict[tuple[Role, Role], Role]) -> PartnerPolicy:
    """Replace the allowed transitions (from, to) → lowest role that may perform them."""
    lock_partner()
    before = current_policy()
    if any(frm == to for frm, to in edges):
        raise RoleConfigError("A transition must go from one role to another.")
    enabled = {r: before.roles[r].enabled for r in Role}
    _check(enabled, edges)
    roles = {r: RoleInput(c.enabled, c.label, c.permissions) for r, c in before.roles.items()}
    _write(roles, edges)
    record_audit(
        "roles.transitions_update",
        target=("partner", current_partner.id),
        details={
            "added": sorted(f"{f.value}->{t.value}" for f, t in edges.keys() - before.transitions),
            "removed": sorted(
                f"{f.value}->{t.value}" for f, t in before.transitions.keys() - edges.keys()
            ),
        },
    )
    return current_policy()


def _as_config(role: Role, item: RoleInput) -> RoleConfig:
    return RoleConfig(role, item.enabled, item.label.strip(), item.permissions)


def _write(roles: dict[Role, RoleInput], edges: dict[tuple[Role, Role], Role]) -> None:
    db.session.execute(delete(RoleSetting))
    db.session.execute(delete(RoleTransition))
    for role, item in roles.items():
        db.session.add(
            RoleSetting(
                role=role,
                enabled=item.enabled,
                label=item.label.strip(),
                permissions=sorted(p.value for p in item.permissions),
            )
        )
    for (frm, to), min_role in edges.items():
        db.session.add(RoleTransition(from_role=frm, to_role=to, min_role=min_role))
    db.session.flush()
    forget_partner_caches()  # the new configuration applies from here on
