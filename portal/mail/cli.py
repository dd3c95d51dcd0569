"""`flask outbox` (read the emails the portal has stored) and `flask mail` (deliver them)."""

from __future__ import annotations

import signal
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from portal import unit_of_work
from portal.commands import transactional
from portal.mail.models import MailStatus
from portal.mail.outbox import find_message, latest_messages
from portal.mail.services import deliver_due, failed_messages, retry_message
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


mail_cli = AppGroup("mail", help="Deliver the outbox over SMTP; list and retry failed mail.")


@mail_cli.command("worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
def worker(once: bool) -> None:
    """Deliver queued mail after commit, retrying with backoff, until SIGTERM or Ctrl-C.

    Run one or more next to the web workers (they never talk to SMTP). A message is held by
    one worker at a time; one that stops mid-way leaves its messages for the others.
    """
    config = current_app.config
    if not config.get("SMTP_URL"):
        raise click.ClickException("PORTAL_SMTP_URL is not set: there is nothing to deliver to.")
    stopping: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)  # finish the message in hand, then leave

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    click.echo(f"mail worker: delivering every {config['MAIL_POLL_INTERVAL']:g} s")
    try:
        while not stopping:
            try:
                tried = deliver_due()
            except Exception as exc:  # the database away: log it, wait, try again
                unit_of_work.rollback()
                click.echo(f"mail worker: {exc.__class__.__name__}: {exc}", err=True)
                tried = 0
            if once:
                break
            if not tried:
                time.sleep(config["MAIL_POLL_INTERVAL"])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("mail worker: stopped")


@mail_cli.command("failed")
def failed() -> None:
    """Messages every attempt failed for, newest first."""
    messages = failed_messages()
    if not messages:
        click.echo("No failed messages.")
        return
    for m in messages:
        click.echo(
            f"{m.id:>6}  {m.created_at.strftime(TIME_FORMAT)}  {m.to_address:<32}  {m.error}"
        )


@mail_cli.command("retry")
@click.argument("message_id", type=click.IntRange(1, MAX_ID))
@transactional
def retry(message_id: int) -> str:
    """Queue a failed message again."""
    message = retry_message(None, message_id)
    return f"Message {message.id} to {message.to_address} is queued again ({MailStatus.PENDING})."


def init_app(app: Flask) -> None:
    app.cli.add_command(outbox_command)
    app.cli.add_command(mail_cli)
