"""`flask partner ...`: the operator console's actions from the command line."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from portal.extensions import db
from portal.features.catalogue import CATALOGUE
from portal.features.models import Lock
from portal.features.services import FeatureError, lock_feature
from portal.operator.services import (
    PartnerStateError,
    onboard_partner,
    partner_counts,
    reactivate_partner,
    suspend_partner,
)
from portal.tenancy.models import Partner

partner_cli = AppGroup("partner", help="Onboard, list, suspend and configure partners.")


def partner_by_slug(slug: str) -> Partner:
    """The partner a command names, or a clear command-line error."""
    partner = db.session.execute(select(Partner).where(Partner.slug == slug)).scalar_one_or_none()
    if partner is None:
        raise click.ClickException(f"No partner with the address name {slug!r}.")
    return partner


def _run(action, message: str) -> None:
    try:
        action()
    except (PartnerStateError, FeatureError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(message)


@partner_cli.command("list")
def list_partners() -> None:
    """Every partner with its status and counts."""
    counts = partner_counts()
    for p in db.session.execute(select(Partner).order_by(Partner.slug)).scalars():
        c = counts.get(p.id, {})
        click.echo(
            f"{p.slug:<24} {p.status.value:<10} users={c.get('users', 0):<6} "
            f"sessions={c.get('sessions', 0):<5} "
            f"subscriptions={c.get('subscriptions', 0):<5} {p.name}"
        )


@partner_cli.command("create")
@click.option("--slug", required=True, help="Address name: <slug>.<server name>.")
@click.option("--name", required=True)
@click.option("--admin-email", required=True, help="The first admin, invited by email.")
@click.option("--theme", default="default", show_default=True)
@click.option("--color", default="#2563eb", show_default=True)
def create(slug: str, name: str, admin_email: str, theme: str, color: str) -> None:
    """Onboard a partner and invite its first admin."""
    server = current_app.config["SERVER_NAME"]
    _run(
        lambda: onboard_partner(
            None,
            slug=slug,
            name=name,
            admin_email=admin_email,
            base_theme=theme,
            primary_color=color,
        ),
        f"{name} is live at {slug}.{server}; {admin_email} has been invited.",
    )


@partner_cli.command("suspend")
@click.argument("slug")
@click.option("--reason", required=True)
def suspend(slug: str, reason: str) -> None:
    """Suspend a partner: its portal closes and every session ends."""
    partner = partner_by_slug(slug)
    _run(lambda: suspend_partner(None, partner, reason), f"{partner.name} is suspended.")


@partner_cli.command("reactivate")
@click.argument("slug")
def reactivate(slug: str) -> None:
    partner = partner_by_slug(slug)
    _run(lambda: reactivate_partner(None, partner), f"{partner.name} is active again.")


@partner_cli.command("lock")
@click.argument("slug")
@click.argument("feature", type=click.Choice(sorted(CATALOGUE)))
@click.argument("lock", type=click.Choice([lock.value for lock in Lock]))
def lock(slug: str, feature: str, lock: str) -> None:
    """Lock a feature on or off for a partner, or release the lock (none)."""
    partner = partner_by_slug(slug)
    _run(
        lambda: lock_feature(None, partner, feature, Lock(lock)),
        f"{CATALOGUE[feature].label} for {partner.name}: lock {lock}.",
    )
