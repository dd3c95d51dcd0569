"""Self-service account changes: password reset, sign-up, profile, email and password.

Every function works on the current partner (from the host or `partner_scope`) and adds its
changes, emails and audit events to the caller's transaction without committing: the view (or
CLI command) commits once when the call returns and rolls back when it raises, so nothing is
ever half-written. A refused change raises `AccountError` (a `UserError`, with the form field it
concerns); an unknown, used, expired, revoked or other partner's link raises `TokenInvalid`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import url_for
from sqlalchemy import select

from portal.audit.services import record_audit
from portal.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    partner_password_refusal,
    verify_password,
)
from portal.auth.throttle import throttle
from portal.clock import utcnow
from portal.extensions import db
from portal.mail.services import send_email
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.sessions.services import revoke_user_sessions
from portal.tenancy.context import current_partner
from portal.tokens.models import ActionToken, TokenPurpose
from portal.tokens.services import (
    LIFETIMES,
    TokenInvalid,
    issue_token,
    peek_token,
    redeem_token,
    revoke_tokens,
)
from portal.unit_of_work import lock_user
from portal.users.models import User, UserStatus, normalize_email
from portal.users.services import (
    UserError,
    clean_display_name,
    clean_email,
    create_user,
    is_pending_signup,
)

log = logging.getLogger("portal.account")

MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_LENGTH = 1024
# A person asking twice within this interval gets the link already on its way, not a new one.
RESEND_INTERVAL = timedelta(minutes=1)


class AccountError(UserError):
    """A refused account change; `field` names the form field the message belongs to."""

    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- Validation shared by forms, views and CLI ------------------------------------------------


def _clean_address(email: str, field: str = "email") -> str:
    try:
        address = clean_email(email)
    except UserError as exc:
        raise AccountError(str(exc), field) from exc
    if len(address) > MAX_EMAIL_LENGTH:
        raise AccountError("This email address is too long.", field)
    return address


def _check_new_password(
    password: str, field: str = "password", *, email: str | None = None, name: str | None = None
) -> None:
    """The length, then the rules of `password_refusal`: not a common password, none of the
    partner's names nor the person's own (`email`, `name`) in it."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(
            f"Use between {MIN_PASSWORD_LENGTH} and {MAX_PASSWORD_LENGTH} characters.", field
        )
    refusal = partner_password_refusal(password, email=email, name=name)
    if refusal is not None:
        raise AccountError(refusal, field)


def _user_by_email(address: str) -> User | None:
    return db.session.execute(
        select(User).where(User.email == normalize_email(address))
    ).scalar_one_or_none()


def _lifetime_text(purpose: TokenPurpose) -> str:
    """How long a link of this purpose works, in words ("1 hour", "2 days")."""
    hours = int(LIFETIMES[purpose].total_seconds() // 3600)
    if hours % 24 == 0:
        days = hours // 24
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


def _recently_issued(user: User, purpose: TokenPurpose) -> bool:
    """Whether a still-usable link of this purpose went out within the resend interval."""
    now = utcnow()
    found = db.session.execute(
        select(ActionToken.id).where(
            ActionToken.user_id == user.id,
            ActionToken.purpose == purpose,
            ActionToken.used_at.is_(None),
            ActionToken.revoked_at.is_(None),
            ActionToken.expires_at > now,
            ActionToken.created_at > now - RESEND_INTERVAL,
        )
    )
    return found.first() is not None


def _mail_limit_reached(client_ip: str | None) -> str | None:
    """Count a visitor's request that may send mail; the limit it exceeds, if any (logged).

    Counted before the address is looked up, so it answers the same for every address.
    """
    limit = throttle().mail_request(str(current_partner.id), client_ip)
    if limit is not None:
        log.warning("mail limit per %s reached (client %s): nothing sent", limit, client_ip)
    return limit


def _check_current_password(
    user: User, password: str, client_ip: str | None, *, field: str, message: str
) -> None:
    """The current password, asked again before a sensitive change: a wrong one counts as a
    failed sign-in of the account (the same limits, weighed one at a time), so a stolen
    session cannot guess it either."""
    scope = str(current_partner.id)
    lock_user(user.id)
    throttle().check_login(scope, user.email, client_ip)
    if not verify_password(user.password_hash, password):
        throttle().login_failed(scope, user.email, client_ip)
        raise AccountError(message, field)


def check_current_password(user: User, password: str, client_ip: str | None, *, field: str) -> None:
    """Ask for the password again before something that cannot be undone (closing)."""
    _check_current_password(
        user, password, client_ip, field=field, message="Your password is not correct."
    )


def _may_mail(address: str, *, notice: bool = False) -> bool:
    """Whether one more link (or sign-up notice) to this address is within its limit."""
    return throttle().mail_to(str(current_partner.id), address, notice=notice)


# Who may still use a link: a reset or email change needs an active account, a sign-up
# confirmation one that is still waiting for it.
LINK_USER_STATUS = {
    TokenPurpose.PASSWORD_RESET: UserStatus.ACTIVE,
    TokenPurpose.VERIFY_EMAIL: UserStatus.INVITED,
    TokenPurpose.CHANGE_EMAIL: UserStatus.ACTIVE,
}


def open_link(token: str, purpose: TokenPurpose) -> ActionToken:
    """The live link's record without using it up, or TokenInvalid (also for a foreign host)."""
    record = peek_token(token, purpose)
    if record.user.status != LINK_USER_STATUS[purpose]:
        raise TokenInvalid()
    return record


def _use_link(token: str, purpose: TokenPurpose) -> ActionToken:
    """Use the link up (compare-and-set: of two concurrent uses exactly one succeeds)."""
    record = redeem_token(token, purpose)
    if record.user.status != LINK_USER_STATUS[purpose]:
        raise TokenInvalid()
    return record


# --- Password reset ---------------------------------------------------------------------------


def _send_reset_link(user: User, *, by: User | None) -> None:
    token = issue_token(user, TokenPurpose.PASSWORD_RESET, by=by)
    send_email(
        user.email,
        "Reset your password",
        "password_reset",
        user=user,
        link=url_for("account.reset_password", token=token, _external=True),
        lifetime=_lifetime_text(TokenPurpose.PASSWORD_RESET),
        admin=by.label if by is not None else None,
    )


def request_password_reset(email: str, *, client_ip: str | None = None) -> bool:
    """Email a reset link if `email` is an active user of this partner; True when one was sent.

    The caller answers the same whatever this returns, so nobody learns which addresses exist.
    """
    address = _clean_address(email)
    limit = _mail_limit_reached(client_ip)
    user = _user_by_email(address)
    sent = False
    reason = "unknown address"
    if limit is not None:
        reason = f"limit per {limit} reached, nothing sent"
    elif user is not None and user.status != UserStatus.ACTIVE:
        reason = f"user {user.status.value}"
    elif user is not None and _recently_issued(user, TokenPurpose.PASSWORD_RESET):
        reason = "link sent less than a minute ago"
    elif user is not None and not _may_mail(address):
        reason = "limit per address reached, nothing sent"
    elif user is not None:
        _send_reset_link(user, by=None)
        sent, reason = True, "sent"
    record_audit(
        "account.password_reset_request",
        target=user if user is not None else ("email", address[:64]),
        details={"outcome": reason},
    )
    return sent


def send_password_reset(user: User, *, by: User) -> None:
    """An admin sends `user` a password reset link (the user's current password still works)."""
    if user.status == UserStatus.INVITED:
        raise AccountError(
            f"{user.email} has not activated the account yet; send an invitation instead."
        )
    if user.status != UserStatus.ACTIVE:
        raise AccountError(f"{user.email} is deactivated; reactivate the account first.")
    _send_reset_link(user, by=by)
    record_audit("account.password_reset_send", target=user, actor=by)


def reset_password(token: str, password: str) -> User:
    """Set a new password with a reset link; every session of the user ends."""
    owner = open_link(token, TokenPurpose.PASSWORD_RESET).user
    _check_new_password(password, email=owner.email, name=owner.display_name)
    record = _use_link(token, TokenPurpose.PASSWORD_RESET)
    user = record.user
    user.password_hash = hash_password(password)
    ended = revoke_user_sessions(user, by=user, reason="password reset")
    record_audit(
        "account.password_reset",
        target=user,
        actor=user,
        details={"sessions_ended": ended, "by_admin": record.created_by_id is not None},
    )
    return user


# --- Self sign-up -----------------------------------------------------------------------------


def _signup_role() -> Role:
    """The partner's default role for self-registered users; never admin."""
    try:
        role = Role(current_partner.default_role)
    except ValueError:
        return Role.GUEST
    return Role.GUEST if role == Role.ADMIN else role


def _send_verification(user: User) -> None:
    token = issue_token(user, TokenPurpose.VERIFY_EMAIL)
    send_email(
        user.email,
        "Confirm your email address",
        "signup_verify",
        user=user,
        link=url_for("account.verify_signup", token=token, _external=True),
        lifetime=_lifetime_text(TokenPurpose.VERIFY_EMAIL),
    )


def _notify_existing(user: User) -> str:
    """Someone signed up with the address of an existing user: tell that user, not the visitor.

    One email, like a new address gets (or none when its limit is reached), and no password
    hashed on either path: the answer and the work are the same, so nothing tells them apart.
    """
    if is_pending_signup(user):
        # An unconfirmed sign-up: its owner most likely lost the first confirmation email.
        # Whoever opens the new link chooses the password; a sign-up made before that rule
        # may still carry one, chosen by whoever signed up first, and loses it here.
        user.password_hash = None
        if _recently_issued(user, TokenPurpose.VERIFY_EMAIL):
            return "confirmation sent less than a minute ago"
        if not _may_mail(user.email):
            return "limit of links per address reached, nothing sent"
        _send_verification(user)
        return "confirmation sent again"
    if not _may_mail(user.email, notice=True):
        return "notice sent within the hour, nothing sent"
    send_email(
        user.email,
        "Someone tried to sign up with your address",
        "signup_existing",
        user=user,
        invited=user.status == UserStatus.INVITED,
        deactivated=user.status == UserStatus.DEACTIVATED,
        login_link=url_for("auth.login", _external=True),
        reset_link=url_for("account.forgot_password", _external=True),
    )
    return "notice sent"


def sign_up(email: str, display_name: str, *, client_ip: str | None = None) -> User | None:
    """Register a visitor as a pending sign-up, without a password, and email a link.

    Whoever opens the link proves the address and only then chooses the password
    (`verify_signup`), so nobody can sign up with someone else's address ahead of them and
    keep a password of their own on it. Returns the new user, or None when the address already
    belongs to a user of this partner (that user gets a notice or a new link instead) or a
    limit is reached (nothing is sent); the visitor sees the same answer in every case.
    """
    address = _clean_address(email)
    name = clean_display_name(display_name)
    limit = _mail_limit_reached(client_ip)
    if limit is not None:
        record_audit(
            "account.signup_limited", target=("email", address[:64]), details={"limit": limit}
        )
        return None
    existing = _user_by_email(address)
    if existing is not None:
        outcome = _notify_existing(existing)
        record_audit("account.signup_existing", target=existing, details={"outcome": outcome})
        return None
    if not _may_mail(address):  # an address whose earlier sign-ups were removed
        record_audit(
            "account.signup_limited", target=("email", address[:64]), details={"limit": "address"}
        )
        return None
    user = create_user(
        address,
        role=_signup_role(),
        display_name=name,
        status=UserStatus.INVITED,
        source="signup",
    )
    _send_verification(user)
    record_audit("account.signup", target=user, details={"role": user.role.value})
    return user


def verify_signup(token: str, display_name: str, password: str) -> User:
    """Complete a sign-up with its emailed link: name and password chosen, the account active."""
    name = clean_display_name(display_name)
    pending = open_link(token, TokenPurpose.VERIFY_EMAIL).user
    _check_new_password(password, email=pending.email, name=name)
    user = _use_link(token, TokenPurpose.VERIFY_EMAIL).user
    user.display_name = name
    user.password_hash = hash_password(password)
    user.status = UserStatus.ACTIVE
    revoke_tokens(user, TokenPurpose.INVITE)  # an invitation an admin sent meanwhile is moot
    record_audit("account.signup_verified", target=user, actor=user)
    return user


# --- Profile and email change -----------------------------------------------------------------


def update_profile(user: User, display_name: str) -> bool:
    """Change the user's display name; False (and nothing written) when it is unchanged."""
    name = clean_display_name(display_name)
    if name == user.display_name:
        return False
    before = user.display_name
    user.display_name = name
    record_audit("account.profile_update", target=user, details={"from": before, "to": name})
    return True


def pending_email_change(user: User) -> ActionToken | None:
    """The user's live email-change request, if any."""
    return (
        db.session.execute(
            select(ActionToken)
            .where(
                ActionToken.user_id == user.id,
                ActionToken.purpose == TokenPurpose.CHANGE_EMAIL,
                ActionToken.used_at.is_(None),
                ActionToken.revoked_at.is_(None),
                ActionToken.expires_at > utcnow(),
            )
            .order_by(ActionToken.id.desc())
        )
        .scalars()
        .first()
    )


def request_email_change(
    user: User, new_email: str, password: str, *, client_ip: str | None = None
) -> str:
    """Ask `new_email` to confirm; the address changes only once the link is opened, by the
    account's own owner, signed in.

    The answer is the same whatever the address: a link when it is free, a notice to its owner
    when another account uses it (the clash is refused at confirmation), nothing when a mail
    limit is reached. So the form tells nobody which addresses have accounts, and it cannot
    be used to mail anyone at will (the sign-up and reset limits apply). The mail carries no
    text of the requester's choosing (no name), since the address has proved nothing yet.
    """
    _check_current_password(
        user, password, client_ip, field="password", message="Your password is not correct."
    )
    address = _clean_address(new_email, "new_email")
    if address == user.email:
        raise AccountError("This is already your email address.", "new_email")
    pending = pending_email_change(user)
    if (
        pending is not None
        and pending.payload.get("email") == address
        and _recently_issued(user, TokenPurpose.CHANGE_EMAIL)
    ):
        return address  # the same request twice in a row: the first mail is on its way
    limit = _mail_limit_reached(client_ip)
    owner = _user_by_email(address)
    if limit is None and not _may_mail(address, notice=owner is not None):
        limit = "address"
    token = issue_token(user, TokenPurpose.CHANGE_EMAIL, payload={"email": address})
    if limit is not None:
        outcome = f"limit per {limit}: nothing sent"
    elif owner is not None:
        send_email(address, "Someone asked to use your email address", "email_change_taken")
        outcome = "address in use: its owner was told"
    else:
        send_email(
            address,
            "Confirm your new email address",
            "email_change_confirm",
            new_email=address,
            link=url_for("account.confirm_email", token=token, _external=True),
            lifetime=_lifetime_text(TokenPurpose.CHANGE_EMAIL),
        )
        outcome = "link sent"
    record_audit(
        "account.email_change_request", target=user, details={"to": address, "outcome": outcome}
    )
    return address


def cancel_email_change(user: User) -> None:
    """Withdraw the pending email change; its link stops working."""
    pending = pending_email_change(user)
    if pending is None:
        raise AccountError("There is no pending email change.")
    revoke_tokens(user, TokenPurpose.CHANGE_EMAIL)
    record_audit(
        "account.email_change_cancel", target=user, details={"to": pending.payload.get("email")}
    )


def confirm_email_change(token: str) -> User:
    """Apply a confirmed email change and tell the old address about it."""
    record = _use_link(token, TokenPurpose.CHANGE_EMAIL)
    user = record.user
    address = record.payload.get("email")
    if not isinstance(address, str):
        raise TokenInvalid()
    other = _user_by_email(address)
    if other is not None and other.id != user.id:
        raise AccountError(
            "Another account has started using this email address in the meantime, so it "
            "cannot become yours. Your email address is unchanged."
        )
    old = user.email
    user.email = address
    # A reset link mailed to the old address must not outlive the change.
    revoke_tokens(user, TokenPurpose.PASSWORD_RESET)
    send_email(
        old,
        "Your email address was changed",
        "email_changed",
        user=user,
        old_email=old,
        new_email=address,
    )
    record_audit(
        "account.email_change", target=user, actor=user, details={"from": old, "to": address}
    )
    return user


# --- Password change --------------------------------------------------------------------------


def change_password(
    user: User,
    current: str,
    new: str,
    *,
    keep: UserSession | None,
    client_ip: str | None = None,
) -> int:
    """Change the password after checking the current one; every other session ends.

    Returns how many sessions ended.
    """
    _check_current_password(
        user,
        current,
        client_ip,
        field="current_password",
        message="Your current password is not correct.",
    )
    _check_new_password(new, email=user.email, name=user.display_name)
    if new == current:
        raise AccountError("Choose a password different from the current one.", "password")
    user.password_hash = hash_password(new)
    ended = revoke_user_sessions(user, by=user, reason="password change", keep=keep)
    revoke_tokens(user, TokenPurpose.PASSWORD_RESET)
    send_email(
        user.email,
        "Your password was changed",
        "password_changed",
        user=user,
        reset_link=url_for("account.forgot_password", _external=True),
    )
    record_audit("account.password_change", target=user, details={"sessions_ended": ended})
    return ended
