"""User mutations; every one writes an audit event.

The rules that read before they write hold when two admins act at once: each mutation first
takes the partner's write lock and looks at the acting admin again (their role or status may
have changed while it waited), counts are read under that lock, and every write to a user row
is compare-and-set on its version, so a change based on what someone else just changed is
refused as a Conflict instead of silently overwriting it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from flask import current_app, url_for
from sqlalchemy import func, select

from portal.audit.services import record_audit
from portal.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    partner_password_refusal,
)
from portal.auth.signout import duration
from portal.auth.throttle import throttle
from portal.exceptions import Forbidden, PortalError
from portal.extensions import db
from portal.mail.services import send_email
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy
from portal.sessions.services import revoke_user_sessions
from portal.subscriptions.services import role_change_impact, suspend_for_role
from portal.support.models import EndReason
from portal.support.services import end_impersonations_of
from portal.tenancy.context import current_partner
from portal.text import character_problem, collapse_spaces
from portal.tokens.models import ActionToken, TokenPurpose
from portal.tokens.services import (
    TokenInvalid,
    issue_token,
    peek_token,
    redeem_token,
    revoke_tokens,
)
from portal.unit_of_work import before_commit, lock_partner
from portal.users.models import User, UserStatus, normalize_email

log = logging.getLogger("portal.users")


class UserError(PortalError):
    """A user change refused for a reason the person asking can understand."""


MAX_NAME_LENGTH = 120


class InvalidName(UserError):
    """A display name that cannot be stored as it is."""

    status = 422
    field = "display_name"


def clean_display_name(value: str, *, required: bool = True) -> str:
    """A display name as stored, or InvalidName: the one check behind every form taking a name.

    Runs of white space become one space; characters that are not text, or that reorder or
    hide it, are refused (`portal/text.py`): in a list of users they would make one name pass
    for another.
    """
    name = collapse_spaces(value)
    if required and not name:
        raise InvalidName("Enter your name.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"Use at most {MAX_NAME_LENGTH} characters.")
    problem = character_problem(name, of="the name")
    if problem is not None:
        raise InvalidName(problem)
    return name


def clean_email(email: str) -> str:
    """The normalized address, or UserError when it is not a usable email address."""
    try:
        # Outside production the reserved .test domain is allowed (demo and test accounts).
        result = validate_email(
            email.strip(),
            check_deliverability=False,
            test_environment=current_app.config["PORTAL_ENV"] != "production",
        )
    except EmailNotValidError as exc:
        raise UserError(f"Enter a valid email address ({exc}).", status=422) from exc
    return normalize_email(result.normalized)


def user_by_email(email: str) -> User | None:
    """The current partner's user with this address, if any."""
    return db.session.execute(
        select(User).where(User.email == normalize_email(email))
    ).scalar_one_or_none()


def email_taken(email: str) -> bool:
    """Whether the current partner already has a user with this address."""
    return user_by_email(email) is not None


def create_user(
    email: str,
    *,
    role: Role,
    password: str | None = None,
    display_name: str = "",
    status: UserStatus = UserStatus.ACTIVE,
    is_support: bool = False,
    actor: object = ...,
    source: str = "admin",
) -> User:
    """Create a user in the current partner (the partner comes from the scope, never the input)."""
    address = clean_email(email)
    existing = user_by_email(address)
    if existing is not None:
        state = (
            "already invited to" if existing.status == UserStatus.INVITED else "already a user of"
        )
        raise UserError(f"{address} is {state} this portal.")
    if password is not None:
        check_new_password(password, email=address, name=display_name)
    user = User(
        email=address,
        display_name=clean_display_name(display_name, required=False),
        role=role,
        status=status,
        password_hash=hash_password(password) if password is not None else None,
        is_support=is_support,
    )
    db.session.add(user)
    db.session.flush()
    record_audit(
        "user.create",
        target=user,
        actor=actor,
        details={"role": role.value, "status": status.value, "source": source},
    )
    return user


# --- Admin actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row of a bulk action."""

    user_id: int
    email: str
    ok: bool
    message: str


def hold_partner(actor: User | None, permission: Permission | None = None) -> None:
    """Take the partner's write lock, then check the actor again as they are now."""
    lock_partner()
    if actor is None:
        return
    db.session.refresh(actor)
    if permission is not None and not current_policy().allows(actor, permission):
        raise Forbidden("You do not have permission to do this (any more).")


def _active_admins() -> int:
    return db.session.execute(
        select(func.count(User.id)).where(User.role == Role.ADMIN, User.status == UserStatus.ACTIVE)
    ).scalar_one()


def _guard_last_admin(target: User, *, losing: str) -> None:
    if target.role == Role.ADMIN and target.status == UserStatus.ACTIVE and _active_admins() <= 1:
        raise UserError(f"{target.email} is the last active admin and cannot be {losing}.")


class NeedsConfirmation(UserError):
    """The change has a consequence the admin must see and confirm first."""


def change_role(actor: User, target: User, to: Role, *, confirm_suspension: bool = False) -> None:
    """Move `target` to role `to` along an allowed transition (audited).

    When the new role does not allow the user's signed plan, the admin is told first
    (NeedsConfirmation); once confirmed, the subscription is suspended with the reason.
    """
    hold_partner(actor)
    policy = current_policy()
    problem = policy.transition_problem(actor, target, to)
    if problem:
        raise UserError(problem)
    if to != Role.ADMIN:
        _guard_last_admin(target, losing="demoted")
    impact = role_change_impact(target, to)
    if impact is not None and not confirm_suspension:
        raise NeedsConfirmation(
            f"{target.email} is subscribed to {impact.plan.name}, which the role "
            f"{policy.label(to)} may not have. Changing the role suspends that subscription."
        )
    before = target.role
    target.role = to
    details = {"from": before.value, "to": to.value}
    if to == Role.ADMIN and target.is_support:
        # Admins cannot be support agents (set_support refuses it); the promotion ends it.
        target.is_support = False
        details["support_removed"] = True
    if to == Role.ADMIN:  # nobody acts as an admin, and admins act as nobody
        end_impersonations_of(
            target,
            as_agent=EndReason.SUPPORT_REMOVED,
            as_target=EndReason.TARGET_UNAVAILABLE,
            by=actor,
        )
    record_audit("user.role_change", target=target, details=details)
    if impact is not None:
        suspend_for_role(target, actor, before)


def deactivate_user(actor: User, target: User) -> int:
    """Deactivate `target` and end all their sessions at once; returns sessions ended."""
    hold_partner(actor, Permission.USERS_DEACTIVATE)
    if actor.id == target.id:
        raise UserError("You cannot deactivate your own account.")
    if target.status == UserStatus.DEACTIVATED:
        raise UserError(f"{target.email} is already deactivated.")
    _guard_last_admin(target, losing="deactivated")
    before = target.status
    target.status = UserStatus.DEACTIVATED
    if before == UserStatus.INVITED:
        # Never activated, so no password of the person the address belongs to: reactivation
        # must not make one that someone else chose (an old pending sign-up's) usable.
        target.password_hash = None
    end_impersonations_of(
        target,
        as_agent=EndReason.AGENT_DEACTIVATED,
        as_target=EndReason.TARGET_UNAVAILABLE,
        by=actor,
    )
    ended = revoke_user_sessions(target, by=actor, reason="user deactivated")
    revoke_tokens_of(target)
    record_audit(
        "user.deactivate", target=target, details={"from": before.value, "sessions_ended": ended}
    )
    return ended


def reactivate_user(actor: User, target: User) -> None:
    hold_partner(actor, Permission.USERS_DEACTIVATE)
    if target.status != UserStatus.DEACTIVATED:
        raise UserError(f"{target.email} is not deactivated.")
    # Someone who never accepted an invitation goes back to the invitation state.
    target.status = UserStatus.ACTIVE if target.password_hash else UserStatus.INVITED
    record_audit("user.reactivate", target=target, details={"to": target.status.value})


def set_support(actor: User, target: User, enabled: bool) -> None:
    """Grant or remove the support capability."""
    hold_partner(actor, Permission.USERS_SUPPORT)
    if target.is_support == enabled:
        return
    if enabled and target.role == Role.ADMIN:
        raise UserError("Admins cannot be support agents; support agents act on ordinary users.")
    target.is_support = enabled
    # A new agent can no longer be acted as; a former one no longer acts as anybody.
    if enabled:
        end_impersonations_of(target, as_target=EndReason.TARGET_UNAVAILABLE, by=actor)
    else:
        end_impersonations_of(target, as_agent=EndReason.SUPPORT_REMOVED, by=actor)
    record_audit("user.support_grant" if enabled else "user.support_remove", target=target)


def revoke_tokens_of(user: User) -> None:
    for purpose in TokenPurpose:
        revoke_tokens(user, purpose)


def bulk_apply(
    actor: User, user_ids: list[int | str], action: Callable[[User], str | None]
) -> list[RowResult]:
    """Apply `action` to each listed user of this partner, each in its own savepoint.

    Ids that are not row ids at all (see `parse_ids`) are reported like missing users. The
    rows are read under the partner's write lock, so each row's rules see the rows before it.
    """
    hold_partner(actor)
    numbers = [i for i in user_ids if isinstance(i, int)]
    found = {
        u.id: u for u in db.session.execute(select(User).where(User.id.in_(numbers))).scalars()
    }
    results: list[RowResult] = []
    for user_id in dict.fromkeys(user_ids):
        user = found.get(user_id)
        if user is None:  # missing, or another partner's: the same answer
            results.append(RowResult(user_id, "", False, "No such user."))
            continue
        try:
            with db.session.begin_nested():
                message = action(user) or "Done."
        except UserError as exc:
            results.append(RowResult(user.id, user.email, False, str(exc)))
        else:
            results.append(RowResult(user.id, user.email, True, message))
    return results


# --- Invitations ---------------------------------------------------------------------------


class InvitationLimited(UserError):
    """One invitation email too many for now: this partner's, or to this address."""

    status = 429

    def __init__(self, message: str, wait: int) -> None:
        super().__init__(message)
        self.wait = wait

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.wait)}


def _count_invitation(address: str, user: User | None = None) -> None:
    """Count one invitation email an admin sends to `address`, or refuse it (429).

    The last step of an invitation, once its user, link, email and audit event are written:
    the count is kept outside the database and cannot be undone, so an invitation that fails
    before it (an address taken meanwhile by a sign-up, which takes no partner lock) counts
    nothing. A refusal undoes what the invitation wrote with the caller's step (`attempt()`);
    its own audit event is recorded with the request's commit, so it stays when the page or
    API answer shows the refusal.
    """
    refused = throttle().invitation(str(current_partner.id), address)
    if refused is None:
        return
    name, limit, wait = refused
    window = duration(limit.get_expiry() // 60).removeprefix("1 ")  # "hour", "5 minutes"
    later = duration(math.ceil(wait / 60))
    log.warning("invitation limit per %s reached: nothing sent", name)
    target = user if user is not None else ("email", address[:64])
    before_commit(
        lambda: record_audit("invitation.limited", target=target, details={"limit": name})
    )
    invitations = f"{limit.amount} invitation{'s' if limit.amount != 1 else ''}"
    if name == "partner":
        message = (
            f"This portal may send at most {invitations} per {window}. "
            f"Nothing was sent; try again in {later}."
        )
    else:
        message = (
            f"{address} was already sent {invitations} within the last {window}. "
            f"Nothing was sent; try again in {later}."
        )
    raise InvitationLimited(message, wait)


def invite_user(actor: User, email: str, role: Role, display_name: str = "") -> User:
    """Create an invited user and email them a single-use link to set their password."""
    hold_partner(actor, Permission.USERS_INVITE)
    policy = current_policy()
    if not policy.roles[role].enabled:
        raise UserError(f"The role {policy.label(role)} is not enabled.")
    if role.rank > actor.role.rank:
        raise UserError("You cannot invite someone to a role above your own.")
    display_name = clean_display_name(display_name, required=False)
    address = clean_email(email)
    user = create_user(
        address, role=role, display_name=display_name, status=UserStatus.INVITED, source="invite"
    )
    _send_invitation(actor, user)
    record_audit("invitation.send", target=user, details={"role": role.value})
    db.session.flush()
    _count_invitation(address)
    return user


def _send_invitation(actor: User | None, user: User) -> None:
    token = issue_token(user, TokenPurpose.INVITE, by=actor)
    send_email(
        user.email,
        "You are invited",
        "invitation",
        link=url_for("invitations.accept", token=token, _external=True),
        inviter=actor.label if actor is not None else "The platform operator",
        role=current_policy().label(user.role),
    )


def invite_first_admin(email: str, *, operator: object) -> User:
    """A new partner's first admin, invited by the platform operator (no partner user exists)."""
    user = create_user(
        email, role=Role.ADMIN, status=UserStatus.INVITED, actor=operator, source="onboarding"
    )
    _send_invitation(None, user)
    record_audit("invitation.send", target=user, actor=operator, details={"role": "admin"})
    return user


def is_pending_signup(user: User) -> bool:
    """An unconfirmed self sign-up: invited, and the last link it got confirms a sign-up.

    (An admin's invitation sent to it later makes it an invitation like any other.)
    """
    if user.status != UserStatus.INVITED:
        return False
    latest = db.session.execute(
        select(ActionToken.purpose)
        .where(
            ActionToken.user_id == user.id,
            ActionToken.purpose.in_((TokenPurpose.INVITE, TokenPurpose.VERIFY_EMAIL)),
        )
        .order_by(ActionToken.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return latest == TokenPurpose.VERIFY_EMAIL


def _pending_invitation(user: User) -> None:
    # Not the password: a sign-up made before passwords were chosen at confirmation has one.
    if user.status != UserStatus.INVITED:
        raise UserError(f"{user.email} has no pending invitation or sign-up.")


def resend_invitation(actor: User | None, user: User) -> None:
    """Send a pending invitation or sign-up a new link (an admin's count against the limits;
    the platform operator's recovery, `actor` None, does not)."""
    hold_partner(actor, Permission.USERS_INVITE)
    _pending_invitation(user)
    _send_invitation(actor, user)
    record_audit("invitation.resend", target=user)
    if actor is not None:
        db.session.flush()
        _count_invitation(user.email, user)


def revoke_invitation(actor: User, user: User) -> None:
    """Withdraw a pending invitation or remove a pending sign-up: its links die with the row."""
    hold_partner(actor, Permission.USERS_INVITE)
    _pending_invitation(user)
    action = "user.signup_remove" if is_pending_signup(user) else "invitation.revoke"
    record_audit(action, target=user, details={"email": user.email})
    db.session.delete(user)


def check_new_password(password: str, *, email: str | None, name: str | None) -> None:
    """A password an admin sets or an invitee chooses: long enough, not a common one, none of
    the partner's names nor the person's own in it (`portal/auth/passwords.py`)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.", status=422
        )
    refusal = partner_password_refusal(password, email=email, name=name)
    if refusal is not None:
        raise UserError(refusal, status=422)


def accept_invitation(token: str, display_name: str, password: str) -> User:
    """Redeem an invitation on its partner's host: set name and password, become active."""
    name = clean_display_name(display_name)
    invited = peek_token(token, TokenPurpose.INVITE).user
    check_new_password(password, email=invited.email, name=name)
    record = redeem_token(token, TokenPurpose.INVITE)
    user = record.user
    if user.status != UserStatus.INVITED:
        raise TokenInvalid()
    user.display_name = name
    user.password_hash = hash_password(password)
    user.status = UserStatus.ACTIVE
    record_audit("invitation.accept", target=user, actor=user)
    return user
