"""User mutations; every one writes an audit event."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select

from portal.audit.services import record_audit
from portal.auth.passwords import MIN_PASSWORD_LENGTH, hash_password
from portal.extensions import db
from portal.users.models import Role, User, UserStatus, normalize_email


class UserError(ValueError):
    """A user change refused for a reason the person asking can understand."""


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
        raise UserError(f"Enter a valid email address ({exc}).") from exc
    return normalize_email(result.normalized)


def email_taken(email: str) -> bool:
    """Whether the current partner already has a user with this address."""
    found = db.session.execute(select(User.id).where(User.email == normalize_email(email)))
    return found.first() is not None


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
    if email_taken(address):
        raise UserError("A user with this email address already exists.")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.")
    user = User(
        email=address,
        display_name=display_name.strip()[:120],
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
