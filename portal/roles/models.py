"""Roles, and each partner's configuration of them: enabled, labels, permissions, transitions."""

from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db, str_enum
from portal.tenancy.models import PartnerConfiguration, TenantOwned


class Role(enum.StrEnum):
    """Role types, declared lowest to highest."""

    GUEST = "guest"
    BASIC = "basic"
    ADVANCED = "advanced"
    COMPANY = "company"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    @property
    def is_admin(self) -> bool:
        """The admin role's structural rules: always enabled, never the sign-up default, never
        held by a support agent. Permissions are the policy's; this is the ladder's top."""
        return self is Role.ADMIN


class RoleSetting(PartnerConfiguration, TenantOwned, db.Model):
    """One role of one partner. Absent rows mean the catalogue defaults."""

    __tablename__ = "role_settings"
    __table_args__ = (sa.UniqueConstraint("partner_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    enabled: Mapped[bool] = mapped_column(default=True)
    label: Mapped[str] = mapped_column(sa.String(40))
    permissions: Mapped[list[str]] = mapped_column(sa.JSON, default=list)


class RoleTransition(PartnerConfiguration, TenantOwned, db.Model):
    """An allowed role change (from → to) and the lowest role that may make it."""

    __tablename__ = "role_transitions"
    __table_args__ = (sa.UniqueConstraint("partner_id", "from_role", "to_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    from_role: Mapped[Role] = mapped_column(str_enum(Role))
    to_role: Mapped[Role] = mapped_column(str_enum(Role))
    min_role: Mapped[Role] = mapped_column(str_enum(Role))
