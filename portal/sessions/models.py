"""Server-side session records: the cookie holds a random token, the table only its hash."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.operator.models import Operator
from portal.tenancy.models import TenantOwned, referable, same_partner
from portal.users.models import User


class LoginMethod(enum.StrEnum):
    PASSWORD = "password"
    REMEMBER_ME = "remember_me"
    OIDC = "oidc"
    IMPERSONATION = "impersonation"


class SessionRecord:
    """Columns shared by user and operator sessions (DESIGN §7)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    login_method: Mapped[LoginMethod] = mapped_column(
        str_enum(LoginMethod), default=LoginMethod.PASSWORD
    )
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(200))

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class UserSession(SessionRecord, TenantOwned, db.Model):
    """A partner user's login on one device; belongs to exactly one partner."""

    __tablename__ = "user_sessions"

    user_id: Mapped[int] = mapped_column(index=True)
    impersonator_id: Mapped[int | None]
    remember: Mapped[bool] = mapped_column(default=False)
    revoked_by_id: Mapped[int | None]
    # The identity provider's session this sign-in came from (the ID token's `iss` and
    # `sid`), so that the provider's back-channel logout can end exactly this session.
    sso_issuer: Mapped[str | None] = mapped_column(sa.String(500))
    sso_sid: Mapped[str | None] = mapped_column(sa.String(255))

    user: Mapped[User] = relationship(
        primaryjoin="User.id == UserSession.user_id", foreign_keys="UserSession.user_id"
    )
    # The support agent acting as `user` in this session (DESIGN §8), if any.
    impersonator: Mapped[User | None] = relationship(
        primaryjoin="User.id == UserSession.impersonator_id",
        foreign_keys="UserSession.impersonator_id",
    )

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (
            sa.Index("ix_user_sessions_user_active", "user_id", "revoked_at"),
            sa.Index("ix_user_sessions_sso_sid", "partner_id", "sso_sid"),
            referable(),  # support impersonations point at their sessions
            same_partner("user_id", "users", name="fk_user_sessions_user", ondelete="CASCADE"),
            same_partner("impersonator_id", "users", name="fk_user_sessions_impersonator"),
            same_partner("revoked_by_id", "users", name="fk_user_sessions_revoked_by"),
        )


class OperatorSession(SessionRecord, db.Model):
    """An operator's login on the root domain."""

    __tablename__ = "operator_sessions"

    operator_id: Mapped[int] = mapped_column(
        sa.ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )

    operator: Mapped[Operator] = relationship()
