"""Single-use, expiring tokens sent by email: invitations, password resets, verifications."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.tenancy.models import TenantOwned, same_partner
from portal.users.models import User


class TokenPurpose(enum.StrEnum):
    INVITE = "invite"
    PASSWORD_RESET = "password_reset"
    VERIFY_EMAIL = "verify_email"
    CHANGE_EMAIL = "change_email"


class ActionToken(TenantOwned, db.Model):
    """Only the hash of the token is stored; the link in the email carries the token itself."""

    __tablename__ = "action_tokens"
    __table_args__ = (
        sa.Index("ix_action_tokens_user_purpose", "user_id", "purpose"),
        same_partner("user_id", "users", name="fk_action_tokens_user", ondelete="CASCADE"),
        same_partner("created_by_id", "users", name="fk_action_tokens_created_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int]
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    user: Mapped[User] = relationship(
        primaryjoin="User.id == ActionToken.user_id", foreign_keys="ActionToken.user_id"
    )

    @property
    def is_live(self) -> bool:
        return self.used_at is None and self.revoked_at is None and utcnow() < self.expires_at
