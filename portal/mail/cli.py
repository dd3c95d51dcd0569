"""`flask outbox`: read the emails the portal has sent, without a mail server."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from portal.mail.outbox import find_message, latest_messages
from portal.tenancy.context import MAX_ID

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@click.command("outbox")
@click.option(
    "-n",
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many of the newest messages to list.",
)
@click.option("--to", "to", metavar="ADDRESS", help="Only messages sent to this address.")
@click.option(
    "--show",
    "show_id",
    type=click.IntRange(1, MAX_ID),
    metavar="ID",
    help="Print message ID in full.",
)
@with_appcontext
def outbox_command(limit: int, to: str | None, show_id: int | None) -> None:
    """List the newest outbox messages (time, partner, to, subject), or print one."""
    if show_id is not None:
        entry = find_message(show_id)
        if entry is None:
            raise click.ClickException(f"There is no outbox message with id {show_id}.")
        message = entry.message
        click.echo(f"Date:    {message.created_at.strftime(TIME_FORMAT)} UTC")
        click.echo(f"Partner: {entry.partner_slug or '(platform)'}")
        click.echo(f"From:    {message.from_address}")
        click.echo(f"To:      {message.to_address}")
        click.echo(f"Subject: {message.subject}")
        click.echo("")
        click.echo(message.body_text)
        return
    entries = latest_messages(limit, to)
    if not entries:
        click.echo("The outbox is empty.")
        return
    click.echo(f"{'ID':>5}  {'TIME (UTC)':<19}  {'PARTNER':<12}  {'TO':<32}  SUBJECT")
    for entry in entries:
        m = entry.message
        click.echo(
            f"{m.id:>5}  {m.created_at.strftime(TIME_FORMAT):<19}  "
            f"{entry.partner_slug or '-':<12}  {m.to_address:<32}  {m.subject}"
        )
    click.echo("\nPrint one message with: flask outbox --show ID")


def init_app(app: Flask) -> None:
    app.cli.add_command(outbox_command)
