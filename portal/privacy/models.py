"""A user's requested copy of their data."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.extensions import db
from portal.tenancy.models import TenantOwned, same_partner


class DataExport(TenantOwned, db.Model):
    """Requested on /account/data, prepared by `flask maintenance run`, kept until expiry."""

    __tablename__ = "data_exports"
    __table_args__ = (
        same_partner("user_id", "users", name="fk_data_exports_user", ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    ready_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    content: Mapped[str | None] = mapped_column(sa.Text)

    @property
    def is_ready(self) -> bool:
        return self.ready_at is not None and self.content is not None
