"""Plans a partner offers and the subscriptions its users hold."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.roles.models import Role
from portal.tenancy.models import TenantOwned
from portal.users.models import User


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class BillingInterval(enum.StrEnum):
    MONTH = "month"
    YEAR = "year"
    ONCE = "once"
    FREE = "free"


class Plan(TenantOwned, db.Model):
    """A plan of one partner. The price is a label only: no payment processor."""

    __tablename__ = "plans"
    __table_args__ = (sa.UniqueConstraint("partner_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40))
    name: Mapped[str] = mapped_column(sa.String(80))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    price_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(sa.String(3), default="EUR")
    interval: Mapped[BillingInterval] = mapped_column(
        str_enum(BillingInterval), default=BillingInterval.MONTH
    )
    allowed_roles: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    entitlements: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    needs_approval: Mapped[bool] = mapped_column(default=False)
    status: Mapped[PlanStatus] = mapped_column(str_enum(PlanStatus), default=PlanStatus.ACTIVE)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def allows(self, role: Role) -> bool:
        return role.value in self.allowed_roles

    @property
    def is_active(self) -> bool:
        return self.status == PlanStatus.ACTIVE

    @property
    def price_label(self) -> str:
        if self.interval == BillingInterval.FREE or self.price_cents == 0:
            return "Free"
        amount = f"{self.price_cents / 100:,.2f}".removesuffix(".00")
        suffix = {"month": " / month", "year": " / year", "once": " once"}[self.interval.value]
        return f"{amount} {self.currency}{suffix}"


class SubscriptionState(enum.StrEnum):
    SIGNING = "signing"
    SIGNED = "signed"
    SUSPENDED = "suspended"
    UNSIGNED = "unsigned"


HELD_STATES = (SubscriptionState.SIGNED, SubscriptionState.SUSPENDED)


class Subscription(TenantOwned, db.Model):
    """One user's subscription to one plan, moved only by `transition()`.

    The database holds the invariants too: per user at most one subscription in force
    (signed or suspended) and at most one being signed.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.Index(
            "uq_subscriptions_one_held_per_user",
            "user_id",
            unique=True,
            sqlite_where=sa.text("state IN ('signed', 'suspended')"),
            postgresql_where=sa.text("state IN ('signed', 'suspended')"),
        ),
        sa.Index(
            "uq_subscriptions_one_signing_per_user",
            "user_id",
            unique=True,
            sqlite_where=sa.text("state = 'signing'"),
            postgresql_where=sa.text("state = 'signing'"),
        ),
        sa.Index("ix_subscriptions_partner_state", "partner_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="RESTRICT"), index=True)
    state: Mapped[SubscriptionState] = mapped_column(str_enum(SubscriptionState))
    version: Mapped[int] = mapped_column(default=1)
    terms_accepted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()
    plan: Mapped[Plan] = relationship()

    @property
    def is_held(self) -> bool:
        return self.state in HELD_STATES


class SubscriptionEvent(TenantOwned, db.Model):
    """One transition: who, when, from, to, why."""

    __tablename__ = "subscription_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[SubscriptionState | None] = mapped_column(str_enum(SubscriptionState))
    to_state: Mapped[SubscriptionState] = mapped_column(str_enum(SubscriptionState))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    actor_kind: Mapped[str] = mapped_column(sa.String(20))
    on_behalf_of_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
