"""Password login and logout for partner users and operators.

A refused sign-in (wrong password, throttled, session limit) records its audit event and then
raises; the page shows the refusal and the request's commit keeps that record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from portal.audit.services import record_audit
from portal.auth.passwords import hash_password, needs_rehash, verify_password
from portal.auth.throttle import LoginThrottled, throttle
from portal.clock import utcnow
from portal.exceptions import Invalid
from portal.extensions import db
from portal.operator.models import Operator
from portal.sessions.models import LoginMethod, UserSession
from portal.sessions.services import (
    ClientInfo,
    revoke_operator_session,
    revoke_user_session,
    start_operator_session,
    start_user_session,
)
from portal.tenancy.context import current_partner
from portal.unit_of_work import lock_operator, lock_user
from portal.users.models import User, UserStatus, normalize_email

LOGIN_FAILED = "Incorrect email or password."
# The throttle's scope for the root domain's sign-in; a partner host's is the partner's id.
OPERATORS = "operators"


class LoginFailed(Invalid):
    """Unknown email, wrong password or another partner's user: all look the same."""

    def __init__(self) -> None:
        super().__init__(LOGIN_FAILED)


class AccountDeactivated(Invalid):
    """The right password of a deactivated account. Only someone who knows the password learns
    that the account exists (docs/security.md, "finding out which addresses have accounts")."""

    status = 403

    def __init__(self, brand: str) -> None:
        super().__init__(
            f"This account has been deactivated. Ask your {brand} administrator if you need "
            "access again."
        )


def _check_password(account: User | Operator | None, password: str) -> bool:
    ok = verify_password(account.password_hash if account else None, password)
    if ok and account is not None and needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return ok


@dataclass(frozen=True)
class LoginResult:
    account: User | Operator
    token: str
    remember_until: datetime | None = None


def _throttled(scope: str, address: str, client: ClientInfo, action: str) -> None:
    try:
        throttle().check_login(scope, address, client.ip)
    except LoginThrottled:
        record_audit(action, target=("email", address[:64]), actor="anonymous")
        raise


def login_with_password(
    email: str, password: str, client: ClientInfo, *, remember: bool = False
) -> LoginResult:
    """Log a user of the current partner in with a new session."""
    address = normalize_email(email)
    scope = str(current_partner.id)
    user = db.session.execute(select(User).where(User.email == address)).scalar_one_or_none()
    if user is not None:
        # Attempts on one account are weighed one after the other: of many at once, each sees
        # the failures counted before it, so a burst cannot slip past the limits together.
        lock_user(user.id)
    _throttled(scope, address, client, "auth.login_throttled")
    right = _check_password(user, password)
    if not right or user is None or user.status != UserStatus.ACTIVE:
        throttle().login_failed(scope, address, client.ip)
        record_audit("auth.login_failed", target=("email", address[:64]), actor="anonymous")
        if right and user is not None and user.status == UserStatus.DEACTIVATED:
            raise AccountDeactivated(current_partner.brand_name)
        raise LoginFailed()
    record, token = start_user_session(user, client, method=LoginMethod.PASSWORD, remember=remember)
    # Bookkeeping, not a change to the account: no new version, so an admin looking at the
    # user's page meanwhile is not told it changed.
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(last_login_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    record_audit("auth.login", target=user, actor=user, details={"method": "password"})
    return LoginResult(user, token, record.expires_at if record.remember else None)


def logout_user_session(record: UserSession, user: User) -> None:
    revoke_user_session(record, by=user, reason="logout")
    record_audit("auth.logout", target=user, actor=user)


def login_operator(
    email: str, password: str, client: ClientInfo, *, remember: bool = False
) -> LoginResult:
    """Log an operator in on the root domain (operators get no remember-me)."""
    address = normalize_email(email)
    operator = db.session.execute(
        select(Operator).where(Operator.email == address)
    ).scalar_one_or_none()
    if operator is not None:
        lock_operator(operator.id)
    _throttled(OPERATORS, address, client, "operator.login_throttled")
    if not _check_password(operator, password) or operator is None or not operator.active:
        throttle().login_failed(OPERATORS, address, client.ip)
        record_audit("operator.login_failed", target=("email", address[:64]), actor="anonymous")
        raise LoginFailed()
    operator.last_login_at = utcnow()
    record_audit("operator.login", target=operator, actor=operator)
    _record, token = start_operator_session(operator, client)
    return LoginResult(operator, token)


def logout_operator(record, operator: Operator) -> None:
    revoke_operator_session(record, reason="logout")
    record_audit("operator.logout", target=operator, actor=operator)
