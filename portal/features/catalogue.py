"""The feature catalogue: every switchable capability, declared once, in code."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Scope(enum.StrEnum):
    PARTNER = "partner"  # switched per partner
    PLAN = "plan"  # also needs the user's signed plan to grant it


@dataclass(frozen=True)
class Feature:
    key: str
    label: str
    description: str
    default: bool
    scope: Scope = Scope.PARTNER


CATALOGUE: dict[str, Feature] = {
    f.key: f
    for f in (
        Feature(
            "self_signup",
            "Self sign-up",
            "Visitors can create their own account at /signup and confirm it by email.",
            False,
        ),
        Feature(
            "subscriptions",
            "Subscriptions",
            "Users see the plans open to their role and manage their own subscription.",
            True,
        ),
        Feature(
            "password_login",
            "Password sign-in",
            "Users sign in with their email address and password.",
            True,
        ),
        Feature(
            "oidc_login",
            "Single sign-on (OpenID Connect)",
            "Users sign in through the partner's own identity provider.",
            False,
        ),
        Feature(
            "impersonation",
            "Support impersonation",
            "Support agents may act as a user, with a reason, for a limited time.",
            False,
        ),
        Feature(
            "session_self_service",
            "Device self-service",
            "Users see where they are signed in and sign out other devices.",
            True,
        ),
        Feature(
            "api_access",
            "Partner API",
            "The partner's back office may use the JSON API with client credentials.",
            False,
        ),
        Feature("audit_export", "Audit export", "Admins can download the audit log as CSV.", False),
        Feature(
            "reports",
            "Usage reports",
            "A reports page for users whose plan includes it.",
            True,
            Scope.PLAN,
        ),
    )
}

PLAN_GATED = frozenset(key for key, f in CATALOGUE.items() if f.scope == Scope.PLAN)
