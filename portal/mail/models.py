"""The outbox: every message the portal sends, kept in development and tests for reading."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.extensions import db
from portal.tenancy.models import TenantOwned


class OutboxMessage(TenantOwned, db.Model):
    """One email; partner-less for platform mail (operator notices)."""

    __tablename__ = "outbox_messages"
    __table_args__ = {"implicit_returning": False}  # see AuditEvent: platform rows, RLS
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
