"""Platform operator accounts: never partner users, only on the root domain."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.extensions import db


class Operator(UserMixin, db.Model):
    """Someone who runs the deployment: onboards, suspends and configures partners."""

    __tablename__ = "operators"
    __table_args__ = (sa.CheckConstraint("email = lower(email)", name="email_lowercase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(120), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    kind = "operator"

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def label(self) -> str:
        return self.display_name or self.email

    def get_id(self) -> str:
        return f"operator:{self.id}"
