"""`flask privacy …`, `flask maintenance run` and the offboarding commands of `flask partner`."""

from __future__ import annotations

import signal
from pathlib import Path
from time import sleep
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from portal import unit_of_work
from portal.clock import utcnow
from portal.commands import transactional
from portal.database import refresh_statistics
from portal.exceptions import NotFound
from portal.extensions import db
from portal.operator.cli import partner_cli
from portal.privacy.offboarding import close_partner, delete_partner, export_archive
from portal.privacy.retention import run_maintenance
from portal.privacy.services import erase_user
from portal.tenancy.context import partner_by_slug
from portal.tenancy.scope import partner_scope
from portal.users.models import User, normalize_email

privacy_cli = AppGroup("privacy", help="Data protection requests.")
maintenance_cli = AppGroup("maintenance", help="Retention and background work.")


@privacy_cli.command("erase")
@click.argument("slug")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@transactional
def erase(slug: str, email: str, yes: bool) -> str:
    """Erase the personal data of EMAIL in partner SLUG (on the person's request)."""
    partner = partner_by_slug(slug)
    with partner_scope(partner):
        address = normalize_email(email)
        user = db.session.execute(select(User).where(User.email == address)).scalar_one_or_none()
        if user is None:
            raise NotFound(f"{slug} has no user {address}.")
        if not yes:
            click.confirm(f"Erase {address} in {slug}? This cannot be undone", abort=True)
        counts = erase_user(user, by=None, reason="erasure request (command line)")
        user_id = user.id
    parts = ", ".join(f"{n} {k}" for k, n in counts.items())
    return f"Erased user {user_id} of {slug} ({parts}); it is now {user.email}."


@maintenance_cli.command("run")
@click.option("--dry-run", is_flag=True, help="Print what would be done, change nothing.")
@click.option("--batch", type=click.IntRange(1, 100_000), help="Rows per transaction.")
@click.option(
    "--every",
    type=click.FloatRange(0.5, 86_400),
    help="Run again every SECONDS until SIGTERM or Ctrl-C (the demo's `make run`: 5).",
)
@click.option("--rounds", type=click.IntRange(1), help="With --every: stop after N runs.")
def run(dry_run: bool, batch: int | None, every: float | None, rounds: int | None) -> None:
    """Apply every partner's retention policy (safe on several nodes at once)."""
    if every is None:
        if rounds is not None:
            raise click.UsageError("--rounds goes with --every.")
        _run_once(dry_run, batch, quiet=False)
        return
    if dry_run:
        raise click.UsageError("--dry-run runs once; leave out --every.")
    _run_every(every, batch, rounds)


def _run_once(dry_run: bool, batch: int | None, *, quiet: bool) -> None:
    """One maintenance run; `quiet` (the repeating run) says only what it did."""
    report = run_maintenance(utcnow(), dry_run=dry_run, batch=batch)
    verb = "would process" if dry_run else "processed"
    for slug, policy, count in report:
        click.echo(f"{slug:<24} {policy:<22} {verb} {count}")
    if not report and not quiet:
        click.echo("Nothing to do." if not dry_run else "Nothing would be done.")
    if not dry_run and db.engine.dialect.name == "sqlite":
        analyzed = refresh_statistics(db.engine)
        if analyzed:
            tables = ", ".join(analyzed)
            click.echo(f"Query planner statistics refreshed (SQLite ANALYZE): {tables}.")
        elif not quiet:
            click.echo("Query planner statistics are current (SQLite).")


def _run_every(every: float, batch: int | None, rounds: int | None) -> None:
    """The maintenance run again and again (the demo's background loop, or a node without a
    timer), like the mail worker: a failed run is logged and the next one tries again."""
    stopping: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)  # finish the run in hand, then leave

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    click.echo(f"maintenance: running every {every:g} s")
    done = 0
    try:
        while not stopping:
            try:
                _run_once(False, batch, quiet=True)
            except Exception as exc:  # the database away or locked: say so, try again later
                unit_of_work.rollback()
                click.echo(f"maintenance: {exc.__class__.__name__}: {exc}", err=True)
            done += 1
            if rounds is not None and done >= rounds:
                break
            sleep(every)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("maintenance: stopped")


@partner_cli.command("export")
@click.argument("slug")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@transactional
def export(slug: str, output: Path) -> str:
    """Write SLUG's archive (ZIP, one JSON file per table) to OUTPUT."""
    data = export_archive(partner_by_slug(slug))
    output.write_bytes(data)
    return f"Wrote {len(data)} bytes to {output}."


@partner_cli.command("close")
@click.argument("slug")
@click.option("--grace-days", type=int, default=30, show_default=True)
@transactional
def close(slug: str, grace_days: int) -> str:
    """Close SLUG for good: "closed" on its portal; deletable after the grace period."""
    when = close_partner(None, partner_by_slug(slug), grace_days)
    return f"{slug} is closed. Its data can be deleted from {when:%Y-%m-%d %H:%M} UTC."


@partner_cli.command("delete")
@click.argument("slug")
@click.option("--confirm", "confirm_slug", required=True, help="The address name, again.")
@transactional
def delete(slug: str, confirm_slug: str) -> str:
    """Delete every row of closed partner SLUG (after its grace period)."""
    partner = partner_by_slug(slug)
    click.confirm(f"Delete all data of {slug}? This cannot be undone", abort=True)
    counts = delete_partner(None, partner, confirm_slug=confirm_slug)
    return f"Deleted {slug}: {sum(counts.values())} rows."


def init_app(app: Flask) -> None:
    app.cli.add_command(privacy_cli)
    app.cli.add_command(maintenance_cli)
