"""The outbox: every message the portal sends, kept in development and tests for reading."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.tenancy.models import TenantOwned


class MailStatus(enum.StrEnum):
    """Where a message is on its way: the mail worker delivers pending ones after commit."""

    PENDING = "pending"  # waiting for the mail worker (again, after a failed attempt)
    SENT = "sent"  # the SMTP server accepted it
    FAILED = "failed"  # every attempt failed; an operator may retry it
    KEPT = "kept"  # no SMTP server configured: kept in the outbox only (development)


class OutboxMessage(TenantOwned, db.Model):
    """One email; partner-less for platform mail (operator notices)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # What the mail worker claims: pending messages whose next attempt is due.
        sa.Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        {"implicit_returning": False},  # see AuditEvent: platform rows, RLS
    )
    allows_platform_rows = True

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int | None] = mapped_column(  # type: ignore[assignment]
        sa.ForeignKey("partners.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    to_address: Mapped[str] = mapped_column(sa.String(254), index=True)
    from_address: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body_text: Mapped[str] = mapped_column(sa.Text)
    body_html: Mapped[str] = mapped_column(sa.Text)
    transport: Mapped[str] = mapped_column(sa.String(20), default="outbox")
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(sa.String(500))
    status: Mapped[MailStatus] = mapped_column(str_enum(MailStatus), default=MailStatus.KEPT)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    # A worker's lease: until then the message is being delivered; a crashed worker's
    # messages are claimed again once it passes.
    claimed_until: Mapped[datetime | None]
