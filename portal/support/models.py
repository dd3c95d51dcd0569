"""Support impersonations: who acted as whom, why, from which session, and how it ended."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.sessions.models import UserSession
from portal.tenancy.models import TenantOwned, same_partner
from portal.users.models import User


class EndReason(enum.StrEnum):
    """How an impersonation ended."""

    STOPPED = "stopped"  # the agent pressed Stop
    EXPIRED = "expired"  # the partner's time limit passed
    IDLE = "idle"  # no request for longer than the partner's idle timeout
    SESSION_REVOKED = "session_revoked"  # its session was ended (an admin, the user's password)
    AGENT_SESSION_ENDED = "agent_session_ended"  # the agent's own session is no longer live
    AGENT_DEACTIVATED = "agent_deactivated"
    SUPPORT_REMOVED = "support_removed"  # the agent lost the support capability
    FEATURE_OFF = "feature_off"  # the partner switched impersonation off
    TARGET_UNAVAILABLE = "target_unavailable"  # deactivated, made admin or support agent


class Impersonation(TenantOwned, db.Model):
    """A support agent acting as a user of the same partner, for a reason and a limited time.

    The agent's own session (`agent_session_id`) is kept, untouched, while a session of the
    user's (`session_id`, with `impersonator_id` set) carries the requests; Stop or expiry ends
    that one and returns the agent to their own.
    """

    __tablename__ = "impersonations"
    __table_args__ = (
        sa.Index("ix_impersonations_target", "partner_id", "target_id", "started_at"),
        sa.Index("ix_impersonations_agent", "partner_id", "agent_id", "started_at"),
        sa.UniqueConstraint("session_id"),
        sa.CheckConstraint("agent_id <> target_id", name="not_oneself"),
        same_partner("agent_id", "users", name="fk_impersonations_agent"),
        same_partner("target_id", "users", name="fk_impersonations_target"),
        same_partner("agent_session_id", "user_sessions", name="fk_impersonations_agent_session"),
        same_partner("session_id", "user_sessions", name="fk_impersonations_session"),
        same_partner("ended_by_id", "users", name="fk_impersonations_ended_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int]
    target_id: Mapped[int]
    agent_session_id: Mapped[int]
    session_id: Mapped[int]
    reason: Mapped[str] = mapped_column(sa.String(500))
    ticket: Mapped[str | None] = mapped_column(sa.String(64))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[EndReason | None] = mapped_column(str_enum(EndReason))
    ended_by_id: Mapped[int | None]

    agent: Mapped[User] = relationship(
        primaryjoin="User.id == Impersonation.agent_id", foreign_keys="Impersonation.agent_id"
    )
    target: Mapped[User] = relationship(
        primaryjoin="User.id == Impersonation.target_id", foreign_keys="Impersonation.target_id"
    )
    session: Mapped[UserSession] = relationship(
        primaryjoin="UserSession.id == Impersonation.session_id",
        foreign_keys="Impersonation.session_id",
    )
    agent_session: Mapped[UserSession] = relationship(
        primaryjoin="UserSession.id == Impersonation.agent_session_id",
        foreign_keys="Impersonation.agent_session_id",
    )

    def end_as_of(self, now: datetime) -> datetime | None:
        """When it ended, as of `now`: as recorded, or its limit if that passed unnoticed."""
        if self.ended_at is not None:
            return self.ended_at
        return self.expires_at if self.expires_at <= now else None

    def __repr__(self) -> str:
        return f"<Impersonation {self.id} {self.agent_id}->{self.target_id}>"
