"""Why a session the browser still presents no longer signs anyone in, in the user's words.

A sign-out the user did not ask for (an administrator ended the session, the account was
deactivated, the password was changed on another device, the session was idle or reached its
lifetime, the portal was suspended) is said on the sign-in page the user lands on, so nobody
is left on a bare sign-in page wondering what happened. The same holds for platform operators
on the root domain.
"""

from __future__ import annotations

from portal.clock import utcnow
from portal.sessions.models import OperatorSession, UserSession
from portal.sessions.services import OPERATOR_IDLE, OPERATOR_LIFETIME
from portal.tenancy.models import Partner
from portal.users.models import UserStatus


def duration(minutes: int) -> str:
    """`minutes` as people say it: "30 minutes", "12 hours", "1 hour 30 minutes"."""
    hours, rest = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if rest or not hours:
        parts.append(f"{rest} minute{'s' if rest != 1 else ''}")
    return " ".join(parts)


def ended_reason(partner: Partner, record: UserSession) -> str | None:
    """What to tell the person whose browser presented `record`, a session that is over; None
    when they ended it themselves (signing out says so already)."""
    policy = partner.session_policy
    if record.user.status != UserStatus.ACTIVE:
        return (
            f"Your account has been deactivated, so you were signed out. Ask your "
            f"{partner.brand_name} administrator if you need access again."
        )
    reason = record.revoked_reason or ""
    if record.revoked_at is not None:
        if reason == "logout":
            return None
        if reason.startswith("password"):
            return (
                "Your password was changed, so this device was signed out. Sign in with the "
                "new password."
            )
        if reason == "user deactivated":
            return "Your account was deactivated, so you were signed out."
        if reason.startswith("partner suspended"):
            return (
                f"{partner.brand_name}'s portal was suspended for a while and everyone was "
                "signed out. It is available again: please sign in."
            )
        if "session limit" in reason:
            return (
                "You signed in on another device and this one was signed out, because "
                f"{partner.brand_name} allows {policy.max_concurrent} sessions at a time."
            )
        if reason == "signed out by the user":
            return "This device was signed out from another of your devices."
        if "administrator" in reason:
            return "An administrator ended your session. Please sign in again."
        if reason.startswith("support session ended"):
            return None
        return "Your session was ended. Please sign in again."
    if record.expires_at <= utcnow():
        limit = (
            f"{policy.remember_me_days} days"
            if record.remember
            else duration(policy.absolute_hours * 60)
        )
        return f"Your session reached its limit of {limit}. Please sign in again."
    return (
        f"You were signed out after {duration(policy.idle_minutes)} without activity. "
        "Please sign in again."
    )


def operator_ended_reason(record: OperatorSession) -> str | None:
    """The same for an operator's session on the root domain; None after signing out."""
    if not record.operator.active:
        return (
            "Your operator account has been deactivated, so you were signed out. Ask another "
            "operator if you need access again."
        )
    if record.revoked_at is not None:
        if record.revoked_reason == "logout":
            return None
        if record.revoked_reason == "password set":
            return (
                "Your password was set with a link, so this device was signed out. Sign in "
                "with the new password."
            )
        return "Your session was ended. Please sign in again."
    if record.expires_at <= utcnow():
        limit = duration(int(OPERATOR_LIFETIME.total_seconds()) // 60)
        return f"Your session reached its limit of {limit}. Please sign in again."
    idle = duration(int(OPERATOR_IDLE.total_seconds()) // 60)
    return f"You were signed out after {idle} without activity. Please sign in again."
