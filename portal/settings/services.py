"""Partner-level settings changed by the partner's admins."""

from __future__ import annotations

from portal.audit.services import record_audit
from portal.roles.policy import current_policy
from portal.tenancy.context import current_partner
from portal.tenancy.models import SessionPolicy
from portal.users.models import Role


class SettingsError(ValueError):
    """A setting that cannot be saved, with the reason."""


def update_signup(self_signup: bool, default_role: Role) -> None:
    """Switch self sign-up and choose the role new self-registered users get."""
    if default_role == Role.ADMIN:
        raise SettingsError("New users cannot become admins by signing up.")
    if not current_policy().roles[default_role].enabled:
        raise SettingsError(f"The role {default_role.value} is not enabled.")
    partner = current_partner._get_current_object()
    before = {"self_signup": partner.self_signup, "default_role": partner.default_role}
    partner.self_signup = self_signup
    partner.default_role = default_role.value
    after = {"self_signup": self_signup, "default_role": default_role.value}
    if before != after:
        record_audit(
            "settings.signup_update", target=partner, details={"before": before, "after": after}
        )


def update_session_policy(values: dict[str, object]) -> SessionPolicy:
    """Validate and store the partner's session policy; applies to every next request."""
    try:
        policy = SessionPolicy.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc).capitalize() + ".") from exc
    partner = current_partner._get_current_object()
    before = partner.session_policy
    if policy != before:
        partner.session_policy_settings = policy.to_dict()
        record_audit(
            "settings.session_policy_update",
            target=partner,
            details={"before": before.to_dict(), "after": policy.to_dict()},
        )
    return policy
