"""`flask partner ...`: the operator console's actions from the command line."""

from __future__ import annotations

import click
from flask import current_app, url_for
from flask.cli import AppGroup
from sqlalchemy import select

from portal.commands import transactional
from portal.extensions import db
from portal.features.catalogue import CATALOGUE
from portal.features.models import Lock
from portal.features.services import lock_feature
from portal.operator.services import (
    create_operator,
    deactivate_operator,
    grant_admin,
    onboard_partner,
    operators,
    partner_counts,
    reactivate_partner,
    set_password_link,
    suspend_partner,
)
from portal.tenancy.context import partner_by_slug
from portal.tenancy.models import Partner
from portal.text import counted

partner_cli = AppGroup("partner", help="Onboard, list, suspend and configure partners.")
operator_cli = AppGroup("operator", help="Platform operator accounts (the root domain's console).")


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
@transactional
def create(slug: str, name: str, admin_email: str, theme: str, color: str) -> str:
    """Onboard a partner and invite its first admin."""
    onboard_partner(
        None, slug=slug, name=name, admin_email=admin_email, base_theme=theme, primary_color=color
    )
    server = current_app.config["SERVER_NAME"]
    return f"{name} is live at {slug}.{server}; {admin_email} has been invited."


@partner_cli.command("suspend")
@click.argument("slug")
@click.option("--reason", required=True)
@transactional
def suspend(slug: str, reason: str) -> str:
    """Suspend a partner: its portal closes and every session ends."""
    partner = partner_by_slug(slug)
    ended = suspend_partner(None, partner, reason)
    return f"{partner.name} is suspended; {counted(ended, 'session')} ended."


@partner_cli.command("reactivate")
@click.argument("slug")
@transactional
def reactivate(slug: str) -> str:
    """Reopen a suspended partner's portal."""
    partner = partner_by_slug(slug)
    reactivate_partner(None, partner)
    return f"{partner.name} is active again."


@partner_cli.command("lock")
@click.argument("slug")
@click.argument("feature", type=click.Choice(sorted(CATALOGUE)))
@click.argument("lock", type=click.Choice([lock.value for lock in Lock]))
@transactional
def lock(slug: str, feature: str, lock: str) -> str:
    """Lock a feature on or off for a partner, or release the lock (none)."""
    partner = partner_by_slug(slug)
    lock_feature(None, partner, feature, Lock(lock))
    return f"{CATALOGUE[feature].label} for {partner.name}: lock {lock}."


@partner_cli.command("grant-admin")
@click.argument("slug")
@click.argument("email")
@transactional
def grant_admin_command(slug: str, email: str) -> str:
    """Give a partner an admin again: an existing user becomes one, or EMAIL is invited."""
    return grant_admin(None, partner_by_slug(slug), email)


@operator_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="The name shown in the console.")
@click.option(
    "--password",
    help="Avoid: it stays in the shell's history. Without it and --link, it is prompted for "
    "(hidden, twice); at least 10 characters.",
)
@click.option(
    "--link",
    is_flag=True,
    help="Print a one-time link (24 hours) where the new operator chooses their password.",
)
@transactional
def create_operator_command(email: str, name: str, password: str | None, link: bool) -> str:
    """Create a platform operator, who signs in at the root domain's /login."""
    if link and password is not None:
        raise click.UsageError("Give --password or --link, not both.")
    if not link and password is None:
        password = click.prompt(
            "Password for the new operator", hide_input=True, confirmation_prompt=True
        )
    operator = create_operator(None, email, password, display_name=name)
    if link:
        return _link_message(operator.email)
    server = current_app.config["SERVER_NAME"]
    scheme = current_app.config["PREFERRED_URL_SCHEME"]
    return f"{operator.email} is an operator; sign in at {scheme}://{server}/login"


@operator_cli.command("link")
@click.argument("email")
@transactional
def link_command(email: str) -> str:
    """Print a new one-time set-password link for an operator (lost link, forgotten password)."""
    return _link_message(email)


def _link_message(email: str) -> str:
    operator, token, expires = set_password_link(None, email)
    url = url_for("operator.set_password", token=token, _external=True)
    return (
        f"{operator.email} is an operator. Give them this link to choose their password; it "
        f"works once, until {expires:%Y-%m-%d %H:%M} UTC:\n{url}"
    )


@operator_cli.command("list")
def list_operators() -> None:
    """Every operator: email, active or not, last sign-in."""
    found = operators()
    if not found:
        click.echo("There are no operators yet: flask operator create EMAIL")
    for o in found:
        last = o.last_login_at.strftime("%Y-%m-%d %H:%M") if o.last_login_at else "never"
        state = "active" if o.active else "deactivated"
        click.echo(f"{o.email:<40} {state:<12} last sign-in {last}  {o.display_name}")


@operator_cli.command("deactivate")
@click.argument("email")
@transactional
def deactivate_operator_command(email: str) -> str:
    """Deactivate an operator; their sessions end at once."""
    ended = deactivate_operator(None, email)
    return f"{email} is deactivated; {counted(ended, 'session')} ended."
