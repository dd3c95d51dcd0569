"""How pages answer an action: say what happened, or undo it and say why.

`perform()` is the one way a form action runs; `refused()` the one way a refusal is shown: a
short fragment with the refusal's status for htmx, otherwise a flash message and a redirect
back to where the person was.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, request
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.unit_of_work import attempt


def is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


def refused(error: PortalError, back: str) -> Response:
    """Show a refusal: the message with its status for htmx, else a flash and `back`."""
    if is_htmx():
        return Response(error.message, error.status, error.headers)
    flash(error.message, "error")
    return redirect(back)


def perform(action: Callable[[], str], *, back: str) -> Response:
    """Run one action as one step: flash what `action` says it did and go `back`.

    A refusal undoes everything the action wrote and is shown instead.
    """
    try:
        with attempt():
            message = action()
    except PortalError as exc:
        return refused(exc, back)
    flash(message, "info")
    return redirect(back)
