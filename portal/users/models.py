"""Partner users, their roles and statuses."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.roles.models import Role
from portal.tenancy.models import Partner, TenantOwned, referable


class UserStatus(enum.StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


def normalize_email(email: str) -> str:
    """The stored, compared form of an email address: trimmed and lowercased."""
    return email.strip().lower()


class User(UserMixin, TenantOwned, db.Model):
    """A person in one partner; the same email in two partners is two unrelated users."""

    __tablename__ = "users"
    __table_args__ = (
        referable(),
        sa.UniqueConstraint("partner_id", "email"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
        # The admin user list filters and sorts within one partner (fast at 100,000 users).
        sa.Index("ix_users_partner_role", "partner_id", "role"),
        sa.Index("ix_users_partner_status", "partner_id", "status"),
        sa.Index("ix_users_partner_created", "partner_id", "created_at"),
        sa.Index("ix_users_partner_name", "partner_id", "display_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    display_name: Mapped[str] = mapped_column(sa.String(120), default="")
    role: Mapped[Role] = mapped_column(str_enum(Role), default=Role.GUEST)
    status: Mapped[UserStatus] = mapped_column(str_enum(UserStatus), default=UserStatus.INVITED)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    is_support: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # When an account its user asked to close is erased (the cooling-off ends); None otherwise.
    closing_at: Mapped[datetime | None]
    # Every ORM write is compare-and-set on it (UPDATE … WHERE version = the one read): two
    # admins changing one user at once cannot both win (portal/unit_of_work.py).
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    partner: Mapped[Partner] = relationship()

    __mapper_args__ = {"version_id_col": version}

    kind = "user"

    @property
    def is_active(self) -> bool:  # Flask-Login's notion: may this account be logged in
        return self.status == UserStatus.ACTIVE

    @property
    def may_become_support(self) -> bool:
        """Support agents act on ordinary users; an admin is never one."""
        return not self.role.is_admin

    @property
    def label(self) -> str:
        return self.display_name or self.email

    def get_id(self) -> str:
        return f"user:{self.id}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"
