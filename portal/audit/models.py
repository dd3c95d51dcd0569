"""The audit trail: who did what, to what, for whom, from where."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.tenancy.models import TenantOwned


class ActorType(enum.StrEnum):
    USER = "user"
    OPERATOR = "operator"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"
    API_CLIENT = "api_client"
    # A partner's own identity provider, acting through a back-channel logout.
    IDENTITY_PROVIDER = "identity_provider"


class AuditEvent(TenantOwned, db.Model):
    """One recorded action. Platform-level events (operator console) have no partner."""

    __tablename__ = "audit_events"
    # No INSERT … RETURNING: a platform row written from inside a partner's scope is allowed by
    # the row-level security policy's WITH CHECK but, rightly, not readable back there.
    __table_args__ = (
        sa.Index("ix_audit_events_partner_time", "partner_id", "created_at"),
        # The log's list of actions, one index probe per action (audit/routes.py).
        sa.Index("ix_audit_events_partner_action", "partner_id", "action"),
        # "About this user" on the support summary.
        sa.Index("ix_audit_events_partner_target", "partner_id", "target_type", "target_id"),
        # The audit log filtered by action, newest first (migration 0013).
        sa.Index("ix_audit_events_partner_action_time", "partner_id", "action", "created_at"),
        # The audit log filtered by who, as a whole address, newest first (migration 0020).
        sa.Index("ix_audit_events_partner_actor_time", "partner_id", "actor_label", "created_at"),
        # "Done while impersonating" in the audit log: only the few events support made.
        sa.Index(
            "ix_audit_events_partner_support",
            "partner_id",
            "created_at",
            sqlite_where=sa.text("impersonation_id IS NOT NULL"),
            postgresql_where=sa.text("impersonation_id IS NOT NULL"),
        ),
        {"implicit_returning": False},
    )
    allows_platform_rows = True

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int | None] = mapped_column(  # type: ignore[assignment]
        sa.ForeignKey("partners.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[ActorType] = mapped_column(str_enum(ActorType))
    actor_id: Mapped[int | None]
    actor_label: Mapped[str] = mapped_column(sa.String(254), default="")
    # Whose account the actor acted in, when not their own: the user a support agent was
    # impersonating (`impersonation_id` names that impersonation: its reason and ticket).
    on_behalf_of_id: Mapped[int | None]
    impersonation_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(sa.String(80), index=True)
    target_type: Mapped[str | None] = mapped_column(sa.String(40))
    target_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
