"""Partner-level settings changed by the partner's admins."""

from __future__ import annotations

from dataclasses import replace

from portal.audit.services import record_audit
from portal.exceptions import Invalid
from portal.roles.models import Role
from portal.roles.policy import current_policy
from portal.tenancy.context import current_partner
from portal.tenancy.models import SessionPolicy
from portal.unit_of_work import lock_partner


class SettingsError(Invalid):
    """A setting that cannot be saved, with the reason."""


class PolicyProblems(SettingsError):
    """Settings with several bad values: each field's reason, all at once."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.fields = {name: message.capitalize() + "." for name, message in problems.items()}
        super().__init__(" ".join(self.fields.values()))


def update_default_role(default_role: Role) -> None:
    """Choose the role new self-registered users get (sign-up itself is a feature switch)."""
    lock_partner()  # the role's state is read as it is now, not as a concurrent save left it
    if default_role == Role.ADMIN:
        raise SettingsError("New users cannot become admins by signing up.")
    if not current_policy().roles[default_role].enabled:
        raise SettingsError(f"The role {default_role.value} is not enabled.")
    partner = current_partner._get_current_object()
    before = partner.default_role
    if before != default_role.value:
        partner.default_role = default_role.value
        record_audit(
            "settings.default_role_update",
            target=partner,
            details={"before": before, "after": default_role.value},
        )


def update_session_policy(values: dict[str, object]) -> SessionPolicy:
    """Validate and store the partner's session policy; applies to every next request."""
    known = {name: value for name, value in values.items() if name in SessionPolicy.FIELDS}
    problems = SessionPolicy.problems_of(known)
    if problems:
        raise PolicyProblems(problems)
    try:
        policy = SessionPolicy.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc).capitalize() + ".") from exc
    lock_partner()  # the audit event's "before" is the policy as stored now
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


def update_support_policy(minutes: object, notify: bool) -> SessionPolicy:
    """How long a support agent may act as a user, and whether the user is emailed when one
    starts (DESIGN §8); applies to support sessions started from now on."""
    lock_partner()
    partner = current_partner._get_current_object()
    before = partner.session_policy
    try:
        policy = replace(before, impersonation_minutes=minutes, impersonation_notify=notify)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc).capitalize() + ".") from exc
    if policy != before:
        partner.session_policy_settings = policy.to_dict()
        record_audit(
            "settings.support_policy_update",
            target=partner,
            details={
                "before": {
                    "minutes": before.impersonation_minutes,
                    "notify": before.impersonation_notify,
                },
                "after": {"minutes": policy.impersonation_minutes, "notify": notify},
            },
        )
    return policy
