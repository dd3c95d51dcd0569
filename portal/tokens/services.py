"""Issuing and redeeming action tokens (compare-and-set, so each is used at most once)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from portal.clock import utcnow
from portal.exceptions import NotFound
from portal.extensions import db
from portal.tokens.generation import hash_token, new_token
from portal.tokens.models import ActionToken, TokenPurpose
from portal.users.models import User

LIFETIMES = {
    TokenPurpose.INVITE: timedelta(days=7),
    TokenPurpose.PASSWORD_RESET: timedelta(hours=1),
    TokenPurpose.VERIFY_EMAIL: timedelta(days=2),
    TokenPurpose.CHANGE_EMAIL: timedelta(days=1),
}


class TokenInvalid(NotFound):
    """Unknown, expired, used, revoked, or for another partner: all look the same."""

    def __init__(self) -> None:
        super().__init__("This link is not valid: it may have expired or been used already.")


def issue_token(
    user: User,
    purpose: TokenPurpose,
    *,
    by: User | None = None,
    payload: dict[str, Any] | None = None,
) -> str:
    """Revoke the user's earlier tokens of this purpose and issue a new one."""
    revoke_tokens(user, purpose)
    token = new_token()
    db.session.add(
        ActionToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(token),
            expires_at=utcnow() + LIFETIMES[purpose],
            created_by_id=by.id if by else None,
            payload=payload or {},
        )
    )
    db.session.flush()
    return token


def revoke_tokens(user: User, purpose: TokenPurpose) -> None:
    db.session.execute(
        update(ActionToken)
        .where(
            ActionToken.user_id == user.id,
            ActionToken.purpose == purpose,
            ActionToken.used_at.is_(None),
            ActionToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


def peek_token(token: str, purpose: TokenPurpose) -> ActionToken:
    """The live token record (partner-scoped by the ORM), without using it up."""
    record = db.session.execute(
        select(ActionToken).where(
            ActionToken.token_hash == hash_token(token), ActionToken.purpose == purpose
        )
    ).scalar_one_or_none()
    if record is None or not record.is_live:
        raise TokenInvalid()
    return record


def redeem_token(token: str, purpose: TokenPurpose) -> ActionToken:
    """Use the token up; of two concurrent redemptions exactly one succeeds."""
    record = peek_token(token, purpose)
    used = db.session.execute(
        update(ActionToken)
        .where(ActionToken.id == record.id, ActionToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if used.rowcount != 1:
        raise TokenInvalid()
    return record
