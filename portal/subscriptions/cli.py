"""`flask subscription ...`: list subscriptions and move them, through the same state machine.

Every move names the partner admin on whose authority it is made (`--as`): the command line
acts as that admin, with that admin's permissions, and the audit log says so.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.commands import transactional
from portal.exceptions import NotFound
from portal.extensions import db
from portal.subscriptions.models import Plan, Subscription, SubscriptionEvent, SubscriptionState
from portal.subscriptions.services import ADMIN_ACTIONS, admin_move
from portal.tenancy.context import MAX_ID, partner_by_slug
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, normalize_email

subscription_cli = AppGroup(
    "subscription", help="List a partner's subscriptions and approve, suspend, resume or end them."
)
TIME_FORMAT = "%Y-%m-%d %H:%M"


def _user(email: str) -> User | None:
    return db.session.execute(
        select(User).where(User.email == normalize_email(email))
    ).scalar_one_or_none()


def _subscription(partner: Partner, subscription_id: int) -> Subscription:
    sub = db.session.execute(
        select(Subscription).where(
            Subscription.id == subscription_id, Subscription.partner_id == partner.id
        )
    ).scalar_one_or_none()
    if sub is None:
        raise NotFound(f"No subscription {subscription_id} in {partner.slug}.")
    return sub


@subscription_cli.command("list")
@click.argument("slug")
@click.option("--state", type=click.Choice([s.value for s in SubscriptionState]))
@click.option("--user", "email", metavar="EMAIL", help="Only this user's subscriptions.")
@transactional
def list_subscriptions(slug: str, state: str | None, email: str | None) -> None:
    """A partner's subscriptions, newest first: id, state, plan, user, last change."""
    with partner_scope(partner_by_slug(slug)):
        query = (
            select(Subscription, Plan.code, User.email)
            .join(Plan, Plan.id == Subscription.plan_id)
            .join(User, User.id == Subscription.user_id)
            .order_by(Subscription.updated_at.desc(), Subscription.id.desc())
        )
        if state:
            query = query.where(Subscription.state == SubscriptionState(state))
        if email:
            user = _user(email)
            if user is None:
                raise NotFound(f"No user {email} in {slug}.")
            query = query.where(Subscription.user_id == user.id)
        rows = db.session.execute(query).all()
        if not rows:
            click.echo("No subscriptions.")
        for sub, plan_code, user_email in rows:
            click.echo(
                f"{sub.id:>6}  {sub.state.value:<9}  {plan_code:<16} {user_email:<32} "
                f"{sub.updated_at:{TIME_FORMAT}}"
            )


@subscription_cli.command("history")
@click.argument("slug")
@click.argument("subscription_id", type=click.IntRange(1, MAX_ID))
@transactional
def history(slug: str, subscription_id: int) -> None:
    """Every transition of one subscription, oldest first."""
    with partner_scope(partner_by_slug(slug)) as partner:
        sub = _subscription(partner, subscription_id)
        events = db.session.execute(
            select(SubscriptionEvent)
            .where(SubscriptionEvent.subscription_id == sub.id)
            .order_by(SubscriptionEvent.id)
        ).scalars()
        click.echo(f"Subscription {sub.id}: {sub.user.email} on {sub.plan.name}, {sub.state}")
        for e in events:
            frm = e.from_state.value if e.from_state else "-"
            click.echo(
                f"  {e.created_at:{TIME_FORMAT}}  {frm:>9} -> {e.to_state.value:<9} "
                f"by {e.actor_kind:<6} {e.reason}"
            )


@subscription_cli.command("move")
@click.argument("slug")
@click.argument("subscription_id", type=click.IntRange(1, MAX_ID))
@click.argument("action", type=click.Choice(sorted(ADMIN_ACTIONS)))
@click.option(
    "--as", "admin_email", required=True, metavar="EMAIL", help="The partner admin acting."
)
@click.option("--reason", default="", help="Why (required to suspend).")
@transactional
def move(slug: str, subscription_id: int, action: str, admin_email: str, reason: str) -> str:
    """Approve, reject, suspend, resume or end one subscription."""
    with partner_scope(partner_by_slug(slug)) as partner:
        admin = _user(admin_email)
        if admin is None:
            raise NotFound(f"No user {admin_email} in {slug}.")
        sub = _subscription(partner, subscription_id)
        if reason.strip():
            reason = f"{reason.strip()} (command line)"
        admin_move(sub, action, actor=admin, reason=reason)
        return f"Subscription {sub.id} of {sub.user.email} to {sub.plan.name}: {sub.state}."
