"""The fixed permission catalogue and each role's defaults."""

from __future__ import annotations

import enum
import itertools

from portal.roles.models import Role


class Permission(enum.StrEnum):
    PORTAL_VIEW = "portal.view"
    PROFILE_EDIT = "profile.edit"
    SUBSCRIPTION_MANAGE_OWN = "subscription.manage_own"
    USERS_VIEW = "users.view"
    USERS_INVITE = "users.invite"
    USERS_EDIT_ROLE = "users.edit_role"
    USERS_DEACTIVATE = "users.deactivate"
    USERS_SUPPORT = "users.support"
    SESSIONS_REVOKE_ANY = "sessions.revoke_any"
    PLANS_MANAGE = "plans.manage"
    SUBSCRIPTIONS_MANAGE_ANY = "subscriptions.manage_any"
    FEATURES_MANAGE = "features.manage"
    SETTINGS_MANAGE = "settings.manage"
    ROLES_MANAGE = "roles.manage"
    AUDIT_VIEW = "audit.view"


DESCRIPTIONS: dict[Permission, str] = {
    Permission.PORTAL_VIEW: "Use the portal",
    Permission.PROFILE_EDIT: "Edit own profile and password",
    Permission.SUBSCRIPTION_MANAGE_OWN: "Manage own subscription",
    Permission.USERS_VIEW: "See the user list and user details",
    Permission.USERS_INVITE: "Invite users, resend and revoke invitations",
    Permission.USERS_EDIT_ROLE: "Change users' roles (along allowed transitions)",
    Permission.USERS_DEACTIVATE: "Deactivate and reactivate users, send password resets",
    Permission.USERS_SUPPORT: "Grant or remove the support capability",
    Permission.SESSIONS_REVOKE_ANY: "See and end any user's sessions",
    Permission.PLANS_MANAGE: "Manage plans",
    Permission.SUBSCRIPTIONS_MANAGE_ANY: "Manage every user's subscription",
    Permission.FEATURES_MANAGE: "Switch features on and off",
    Permission.SETTINGS_MANAGE: "Change partner settings (sessions, sign-up, branding)",
    Permission.ROLES_MANAGE: "Configure roles, permissions and transitions",
    Permission.AUDIT_VIEW: "Read the audit log",
}

_END_USER = {Permission.PORTAL_VIEW, Permission.PROFILE_EDIT}
DEFAULT_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.GUEST: frozenset(_END_USER),
    Role.BASIC: frozenset(_END_USER | {Permission.SUBSCRIPTION_MANAGE_OWN}),
    Role.ADVANCED: frozenset(_END_USER | {Permission.SUBSCRIPTION_MANAGE_OWN}),
    Role.COMPANY: frozenset(
        _END_USER | {Permission.SUBSCRIPTION_MANAGE_OWN, Permission.USERS_VIEW}
    ),
    Role.ADMIN: frozenset(Permission),
}

# The permissions an admin always keeps, so a partner can never lock itself out.
ADMIN_FLOOR = frozenset({Permission.PORTAL_VIEW, Permission.ROLES_MANAGE, Permission.USERS_VIEW})

DEFAULT_LABELS: dict[Role, str] = {role: role.value.capitalize() for role in Role}


def default_transitions() -> dict[tuple[Role, Role], Role]:
    """(from, to) → the lowest role that may perform it (DESIGN §4 defaults)."""
    ladder = [Role.GUEST, Role.BASIC, Role.ADVANCED, Role.COMPANY]
    edges: dict[tuple[Role, Role], Role] = {}
    for low, high in itertools.pairwise(ladder):
        edges[(low, high)] = Role.ADMIN
        edges[(high, low)] = Role.ADMIN
    for role in ladder:
        edges[(role, Role.ADMIN)] = Role.ADMIN
        edges[(Role.ADMIN, role)] = Role.ADMIN
    return edges
