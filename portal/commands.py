"""What every `flask` command shares: one unit of work, and refusals as clear errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from portal import unit_of_work
from portal.exceptions import PortalError


def transactional(command: Callable[..., str | None]) -> Callable[..., None]:
    """One command = one transaction: commit when it returns, roll back when it fails.

    The command returns what to tell the person; it is printed only after the commit, so a
    command never reports a change that was not stored. A refusal is printed as an error
    (exit status 1) with nothing written.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            message = command(*args, **kwargs)
            unit_of_work.commit()
        except PortalError as exc:
            unit_of_work.rollback()
            raise click.ClickException(exc.message) from exc
        except BaseException:
            unit_of_work.rollback()
            raise
        if message:
            click.echo(message)

    return run
