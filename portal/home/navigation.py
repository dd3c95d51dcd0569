"""The header's links for the signed-in partner user, worked out once per request."""

from __future__ import annotations

from typing import NamedTuple

from flask import Flask, g
from flask_login import current_user

from portal.features.evaluation import feature_on
from portal.roles.policy import can


class Link(NamedTuple):
    endpoint: str
    label: str
    sections: tuple[str, ...]  # the blueprints whose pages mark this link as current


class Navigation(NamedTuple):
    main: list[Link]
    admin: list[Link]


ADMIN_LINKS = (
    ("users.view", Link("users_admin.index", "Users", ("users_admin",))),
    ("sessions.revoke_any", Link("sessions_admin.index", "Sessions", ("sessions_admin",))),
    ("plans.manage", Link("plans_admin.index", "Plans", ("plans_admin",))),
    (
        "subscriptions.manage_any",
        Link("subscriptions_admin.index", "Subscriptions", ("subscriptions_admin",)),
    ),
    ("features.manage", Link("features_admin.index", "Features", ("features_admin",))),
    ("roles.manage", Link("roles_admin.index", "Roles", ("roles_admin",))),
    ("settings.manage", Link("settings_admin.index", "Settings", ("settings_admin",))),
    ("audit.view", Link("audit_admin.index", "Audit log", ("audit_admin",))),
)


def navigation() -> Navigation:
    """What the signed-in user may reach from the header (features on, permissions held)."""
    if "navigation" not in g:
        g.navigation = _build()
    return g.navigation


def _build() -> Navigation:
    main = [Link("home.index", "Home", ("home",))]
    if feature_on("reports"):
        main.append(Link("reports.index", "Reports", ("reports",)))
    if feature_on("subscriptions") and can("subscription.manage_own"):
        main.append(Link("subscription.index", "Subscription", ("subscription",)))
    account = "account.profile" if can("profile.edit") else "account.activity"
    main.append(Link(account, "Account", ("account", "sessions")))
    if getattr(current_user, "is_support", False) and feature_on("impersonation"):
        main.append(Link("support.index", "Support", ("support",)))
    admin = [link for permission, link in ADMIN_LINKS if can(permission)]
    if feature_on("api_access") and can("settings.manage"):
        admin.append(Link("api_clients_admin.index", "API clients", ("api_clients_admin",)))
    return Navigation(main, admin)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["navigation"] = navigation
