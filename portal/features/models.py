"""Per-partner feature state: the partner's switch and the operator's lock."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.tenancy.models import PartnerConfiguration, TenantOwned


class Lock(enum.StrEnum):
    NONE = "none"
    ON = "on"
    OFF = "off"


class FeatureSetting(PartnerConfiguration, TenantOwned, db.Model):
    """One feature of one partner. No row means: the catalogue default, not locked."""

    __tablename__ = "feature_settings"
    __table_args__ = (sa.UniqueConstraint("partner_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(40))
    enabled: Mapped[bool | None]  # the partner's switch; None = catalogue default
    lock: Mapped[Lock] = mapped_column(str_enum(Lock), default=Lock.NONE)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
