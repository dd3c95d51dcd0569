"""The partner's logo: the re-encoded image itself, kept in the database."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.extensions import db
from portal.tenancy.models import TenantOwned


class PartnerLogo(TenantOwned, db.Model):
    """One partner's current logo: PNG bytes the portal encoded itself, never the upload.

    In the database rather than on disk, so every app node serves it, it commits or rolls back
    with the theme that names it, and row-level security keeps it the partner's own.
    """

    __tablename__ = "partner_logos"
    __table_args__ = (sa.UniqueConstraint("partner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64))  # SHA-256 of `data`, in its URL
    content_type: Mapped[str] = mapped_column(sa.String(40), default="image/png")
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
