"""How pages answer: an action says what happened, or is undone and says why; a list answers
htmx with its results alone.

`perform()` is the one way a form action runs; `refused()` the one way a refusal is shown: a
short fragment with the refusal's status for htmx, otherwise a flash message and a redirect
back to where the person was. `list_page()` draws a list's page around its results.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, current_app, flash, g, redirect, render_template, request
from markupsafe import Markup
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.unit_of_work import attempt


def is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


def list_page(page: str, listing: str, /, *, alone: bool, **context: object) -> str:
    """A list's rows and pager (`listing`, a template of their own, which htmx asks for
    `alone`), else the whole `page` (a template) with them drawn in its `listing` variable.

    The listing is drawn on its own and placed in the page as one piece of text: included
    in the page instead, every piece of every row would pass up through each block the page
    extends, a third of a long list's drawing.
    """
    drawn = render_template(listing, **context)
    if alone:
        return drawn
    return render_template(page, listing=Markup(drawn), **context)


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


def answer_no_sooner_than_the_floor() -> None:
    """Hold this answer until ANSWER_FLOOR seconds after the request began, its commit
    included: pages whose work differs by what the visitor asked about (a new address or a
    known one) then take the same time, and their timing tells nothing."""
    g.answer_not_before = g.get("started_at", time.monotonic()) + current_app.config["ANSWER_FLOOR"]


def _hold(response: Response) -> Response:
    not_before = g.pop("answer_not_before", None)
    if not_before is not None:
        remaining = not_before - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
    return response


def init_app(app: Flask) -> None:
    # Registered first, so that it runs last: after every other after_request hook.
    app.after_request_funcs.setdefault(None, []).insert(0, _hold)
