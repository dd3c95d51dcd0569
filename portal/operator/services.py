"""Operator actions on partners; each one audited, in the partner's trail and the platform's."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select, update

from portal.audit.services import record_audit
from portal.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    context_words,
    hash_password,
    password_refusal,
)
from portal.clock import utcnow
from portal.exceptions import NotFound, PortalError
from portal.extensions import db
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.sessions.models import OperatorSession, UserSession
from portal.sessions.services import revoke_partner_sessions
from portal.subscriptions.models import HELD_STATES, Subscription
from portal.tenancy.models import Partner, PartnerStatus, Theme, slug_problem
from portal.tenancy.scope import partner_scope, unscoped
from portal.tokens.generation import new_token
from portal.unit_of_work import lock_operator, lock_partner
from portal.users.models import User, UserStatus
from portal.users.services import (
    UserError,
    clean_email,
    invite_first_admin,
    resend_invitation,
)


class PartnerStateError(PortalError):
    """The partner is not in a state where this action makes sense."""


def onboard_partner(
    operator: Operator | None,
    *,
    slug: str,
    name: str,
    admin_email: str,
    base_theme: str = "default",
    primary_color: str = "#2563eb",
    accent_color: str = "#0f172a",
) -> Partner:
    """Create a partner and invite its first admin: live at once, no deploy."""
    slug = slug.strip()
    problem = slug_problem(slug)
    if problem:
        raise PartnerStateError(f"The address name {problem}.")
    if db.session.execute(select(Partner.id).where(Partner.slug == slug)).first():
        raise PartnerStateError(f"The address name {slug} is taken.")
    name = " ".join(name.split())
    if not 1 <= len(name) <= 120:
        raise PartnerStateError("The name must be 1 to 120 characters.")
    try:
        theme = Theme(base=base_theme, primary_color=primary_color, accent_color=accent_color)
    except ValueError as exc:
        raise PartnerStateError(f"Theme: {exc}.") from exc
    partner = Partner(slug=slug, name=name, theme_settings=theme.to_dict())
    db.session.add(partner)
    db.session.flush()
    record_audit("partner.create", target=partner, actor=operator, details={"slug": slug})
    with partner_scope(partner):
        try:
            admin = invite_first_admin(admin_email, operator=operator)
        except UserError as exc:
            raise PartnerStateError(str(exc)) from exc
        record_audit(
            "partner.create", target=partner, actor=operator, details={"admin": admin.email}
        )
    return partner


def suspend_partner(operator: Operator | None, partner: Partner, reason: str) -> int:
    """Suspend a partner: its portal shows "unavailable" and every session ends at once."""
    reason = " ".join(reason.split())[:200]
    if not reason:
        raise PartnerStateError("Give a reason for the suspension.")
    if partner.status == PartnerStatus.SUSPENDED:
        raise PartnerStateError(f"{partner.name} is already suspended.")
    if partner.status == PartnerStatus.CLOSED:
        raise PartnerStateError(f"{partner.name} is closed.")
    partner.status = PartnerStatus.SUSPENDED
    with partner_scope(partner):
        ended = revoke_partner_sessions(by=None, reason=f"partner suspended: {reason}")
        record_audit("partner.suspend", target=partner, actor=operator, details={"reason": reason})
    record_audit(
        "partner.suspend",
        target=partner,
        actor=operator,
        details={"reason": reason, "sessions": ended},
    )
    return ended


def reactivate_partner(operator: Operator | None, partner: Partner) -> None:
    if partner.status != PartnerStatus.SUSPENDED:
        raise PartnerStateError(f"{partner.name} is not suspended.")
    partner.status = PartnerStatus.ACTIVE
    with partner_scope(partner):
        record_audit("partner.reactivate", target=partner, actor=operator)
    record_audit("partner.reactivate", target=partner, actor=operator)


def grant_admin(operator: Operator | None, partner: Partner, email: str) -> str:
    """Give a partner an admin again (recovery); returns what happened, in words.

    An existing user of the partner becomes an admin (reactivated if deactivated; someone who
    never accepted their invitation gets a new one); an unknown address is invited as admin.
    """
    with partner_scope(partner):
        lock_partner()
        address = clean_email(email)
        user = db.session.execute(select(User).where(User.email == address)).scalar_one_or_none()
        if user is None:
            invite_first_admin(address, operator=operator)
            outcome = f"{address} was invited as an admin of {partner.name}."
        else:
            before = {"role": user.role.value, "status": user.status.value}
            user.role, user.is_support = Role.ADMIN, False
            if user.status == UserStatus.DEACTIVATED:
                user.status = UserStatus.ACTIVE if user.password_hash else UserStatus.INVITED
            record_audit(
                "user.admin_granted",
                target=user,
                actor=operator,
                details={"from": before, "by": "platform operator"},
            )
            if user.status == UserStatus.INVITED:
                # Never confirmed: whoever opens the new link chooses the password, never one
                # set by whoever started a sign-up with this address.
                user.password_hash = None
                resend_invitation(None, user)
                outcome = f"{address} is an admin of {partner.name}; a new invitation was sent."
            else:
                outcome = f"{address} is now an active admin of {partner.name}."
    record_audit(
        "partner.admin_granted", target=partner, actor=operator, details={"email": address}
    )
    return outcome


def partner_counts() -> dict[int, dict[str, int]]:
    """Per partner: users, live sessions and subscriptions in force (the console's overview)."""
    now = utcnow()
    counts: dict[int, dict[str, int]] = {}
    queries = {
        "users": select(User.partner_id, func.count()).group_by(User.partner_id),
        "sessions": select(UserSession.partner_id, func.count())
        .where(UserSession.revoked_at.is_(None), UserSession.expires_at > now)
        .group_by(UserSession.partner_id),
        "subscriptions": select(Subscription.partner_id, func.count())
        .where(Subscription.state.in_(HELD_STATES))
        .group_by(Subscription.partner_id),
    }
    with unscoped():
        for name, stmt in queries.items():
            for partner_id, count in db.session.execute(stmt).all():
                counts.setdefault(partner_id, {})[name] = count
    return counts


class OperatorAccountError(PortalError):
    """An operator account cannot be created or changed so."""


def _check_password(password: str, email: str | None = None) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorAccountError(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.", status=422
        )
    refusal = password_refusal(password, context_words(email), portal="the platform")
    if refusal is not None:
        raise OperatorAccountError(refusal, status=422)


def create_operator(
    actor: Operator | None, email: str, password: str | None, *, display_name: str = ""
) -> Operator:
    """A new platform operator who signs in on the root domain with `password`; without one,
    with a password nobody knows until they choose theirs through a set-password link."""
    address = clean_email(email)
    if password is not None:
        _check_password(password, address)
    taken = db.session.execute(select(Operator.id).where(Operator.email == address)).first()
    if taken:
        raise OperatorAccountError(f"{address} is already an operator.", status=409)
    name = " ".join(display_name.split())[:120]
    operator = Operator(
        email=address,
        display_name=name,
        password_hash=hash_password(password if password is not None else new_token()),
    )
    db.session.add(operator)
    db.session.flush()
    details = {"email": address, "password": "given" if password is not None else "by link"}
    record_audit("operator.create", target=operator, actor=actor, details=details)
    return operator


# --- Set-password links -----------------------------------------------------------------------
# Operators are no partner's users, so the partner-scoped action tokens do not fit them: the
# link is signed with the secret key instead, and names the operator, its expiry and a digest
# of the password hash it replaces. Setting a password changes that hash, so a link works once
# (and every earlier link dies with it); nothing is stored until it is used.

SET_PASSWORD_LINK_LIFETIME = timedelta(hours=24)


class OperatorLinkInvalid(NotFound):
    """Unknown, tampered, expired or used: the same answer."""

    def __init__(self) -> None:
        super().__init__("This link is invalid or has expired.")


def _links() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="operator-set-password")


def _password_digest(operator: Operator) -> str:
    return hashlib.sha256(operator.password_hash.encode()).hexdigest()[:32]


def set_password_link(actor: Operator | None, email: str) -> tuple[Operator, str, datetime]:
    """A one-time link token for an active operator to choose their password, and its expiry."""
    address = clean_email(email)
    operator = db.session.execute(
        select(Operator).where(Operator.email == address)
    ).scalar_one_or_none()
    if operator is None:
        raise OperatorAccountError(f"There is no operator {address}.", status=404)
    if not operator.active:
        raise OperatorAccountError(f"{address} is deactivated.", status=409)
    expires = utcnow() + SET_PASSWORD_LINK_LIFETIME
    token = _links().dumps(
        {"op": operator.id, "pw": _password_digest(operator), "exp": int(expires.timestamp())}
    )
    record_audit("operator.password_link", target=operator, actor=actor)
    return operator, token, expires


def operator_for_link(token: str) -> Operator:
    """The operator a set-password link is for, while it is usable; else OperatorLinkInvalid."""
    try:
        claims = _links().loads(token)
    except BadSignature as exc:
        raise OperatorLinkInvalid() from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("op"), int):
        raise OperatorLinkInvalid()
    if not isinstance(claims.get("exp"), int) or utcnow().timestamp() >= claims["exp"]:
        raise OperatorLinkInvalid()
    operator = db.session.get(Operator, claims["op"])
    if operator is None or not operator.active or claims.get("pw") != _password_digest(operator):
        raise OperatorLinkInvalid()
    return operator


def set_password_by_link(token: str, password: str) -> Operator:
    """Set the operator's password with their link; their sessions end, the link is used up.

    Under the operator's lock, the link is checked again against the password as it is now:
    of two uses at once, the second finds it used.
    """
    operator = operator_for_link(token)
    _check_password(password, operator.email)
    lock_operator(operator.id)
    db.session.refresh(operator)
    operator = operator_for_link(token)
    operator.password_hash = hash_password(password)
    ended = db.session.execute(
        update(OperatorSession)
        .where(OperatorSession.operator_id == operator.id, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="password set")
        .execution_options(synchronize_session=False)
    ).rowcount
    record_audit(
        "operator.password_set", target=operator, actor=operator, details={"sessions": ended}
    )
    return operator


def operators() -> list[Operator]:
    return list(db.session.execute(select(Operator).order_by(Operator.email)).scalars())


def deactivate_operator(actor: Operator | None, email: str) -> int:
    """Deactivate an operator and end their sessions; how many sessions ended."""
    address = clean_email(email)
    operator = db.session.execute(
        select(Operator).where(Operator.email == address)
    ).scalar_one_or_none()
    if operator is None:
        raise OperatorAccountError(f"There is no operator {address}.", status=404)
    lock_operator(operator.id)
    if not operator.active:
        raise OperatorAccountError(f"{address} is already deactivated.", status=409)
    operator.active = False
    ended = db.session.execute(
        update(OperatorSession)
        .where(OperatorSession.operator_id == operator.id, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="operator deactivated")
        .execution_options(synchronize_session=False)
    ).rowcount
    record_audit("operator.deactivate", target=operator, actor=actor, details={"sessions": ended})
    return ended
