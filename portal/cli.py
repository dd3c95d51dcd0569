"""`flask` commands for developers and operators."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from portal.commands import transactional
from portal.demo.seed import seed_demo
from portal.operator.cli import operator_cli, partner_cli
from portal.subscriptions.cli import subscription_cli


@click.command("seed-demo")
@with_appcontext
@transactional
def seed_demo_command() -> str:
    """Create the demo partners, users and operator (idempotent; never in production)."""
    if current_app.config["PORTAL_ENV"] == "production":
        raise click.ClickException("seed-demo refuses to run with PORTAL_ENV=production.")
    accounts = seed_demo()
    server = current_app.config["SERVER_NAME"]
    scheme = current_app.config["PREFERRED_URL_SCHEME"]
    lines = ["Demo data is ready. Sign in with:"]
    for where in dict.fromkeys(a.where for a in accounts):
        url = (
            f"{scheme}://{server}/login"
            if where == "operator console"
            else f"{scheme}://{where}.{server}/login"
        )
        lines.append(f"\n  {where}: {url}")
        for account in (a for a in accounts if a.where == where):
            lines.append(f"    {account.email:<24} {account.password:<20} {account.note}")
    return "\n".join(lines)


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(partner_cli)
    app.cli.add_command(operator_cli)
    app.cli.add_command(subscription_cli)
