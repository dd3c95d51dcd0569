"""The header's links for the signed-in partner user.

Worked out once per request, and kept per process like the rest of what is derived from the
partner's configuration (`derived`, keyed by its `config_version`): the links follow from the
features, the role policy, and of the user only their role, status, support flag and the
plan-gated features their plan unlocks, which the key names. Each link carries its address
for the host the request came in on, so the header builds no URL.
"""

from __future__ import annotations

from typing import NamedTuple

from flask import Flask, g, url_for
from flask_login import current_user

from portal.features.catalogue import PLAN_GATED
from portal.features.evaluation import feature_on
from portal.roles.policy import can
from portal.subscriptions.services import entitlements_of
from portal.template_urls import request_host_url
from portal.tenancy.configuration import derived
from portal.users.models import User


class Link(NamedTuple):
    endpoint: str
    label: str
    sections: tuple[str, ...]  # the blueprints whose pages mark this link as current
    url: str = ""


class Navigation(NamedTuple):
    main: tuple[Link, ...]  # tuples: one value is shared by every request it fits
    admin: tuple[Link, ...]


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
        g.navigation = _for_user()
    return g.navigation


def _for_user() -> Navigation:
    user = current_user._get_current_object()
    if not isinstance(user, User):
        return _build()
    key = "|".join(
        (
            "navigation",
            user.role,
            user.status,
            "support" if user.is_support else "",
            ",".join(sorted(PLAN_GATED & entitlements_of(user))),
            request_host_url(),
        )
    )
    return derived(key, _build)


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
    return Navigation(_addressed(main), _addressed(admin))


def _addressed(links: list[Link]) -> tuple[Link, ...]:
    return tuple(link._replace(url=url_for(link.endpoint)) for link in links)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["navigation"] = navigation
