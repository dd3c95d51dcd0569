"""Plans a partner offers and the subscriptions its users hold."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.roles.models import Role
from portal.tenancy.models import TenantOwned, referable, same_partner
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
    __table_args__ = (referable(), sa.UniqueConstraint("partner_id", "code"))

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
        referable(),
        same_partner("user_id", "users", name="fk_subscriptions_user", ondelete="CASCADE"),
        same_partner("plan_id", "plans", name="fk_subscriptions_plan", ondelete="RESTRICT"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    plan_id: Mapped[int] = mapped_column(index=True)
    state: Mapped[SubscriptionState] = mapped_column(str_enum(SubscriptionState))
    version: Mapped[int] = mapped_column(default=1)
    terms_accepted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(
        primaryjoin="User.id == Subscription.user_id", foreign_keys="Subscription.user_id"
    )
    plan: Mapped[Plan] = relationship(
        primaryjoin="Plan.id == Subscription.plan_id", foreign_keys="Subscription.plan_id"
    )

    @property
    def is_held(self) -> bool:
        return self.state in HELD_STATES


class SubscriptionEvent(TenantOwned, db.Model):
    """One transition: who, when, from, to, why."""

    __tablename__ = "subscription_events"
    __table_args__ = (
        same_partner(
            "subscription_id",
            "subscriptions",
            name="fk_subscription_events_subscription",
            ondelete="CASCADE",
        ),
        same_partner("actor_id", "users", name="fk_subscription_events_actor"),
        same_partner("on_behalf_of_id", "users", name="fk_subscription_events_on_behalf_of"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(index=True)
    from_state: Mapped[SubscriptionState | None] = mapped_column(str_enum(SubscriptionState))
    to_state: Mapped[SubscriptionState] = mapped_column(str_enum(SubscriptionState))
    actor_id: Mapped[int | None]
    actor_kind: Mapped[str] = mapped_column(sa.String(20))
    on_behalf_of_id: Mapped[int | None]
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship(
        primaryjoin="User.id == SubscriptionEvent.actor_id",
        foreign_keys="SubscriptionEvent.actor_id",
    )
    subscription: Mapped[Subscription] = relationship(
        primaryjoin="Subscription.id == SubscriptionEvent.subscription_id",
        foreign_keys="SubscriptionEvent.subscription_id",
    )
