"""Clear error pages (and short messages for htmx); never a stack trace for a visitor."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from portal.extensions import db
from portal.tenancy.context import PartnerUnavailable

log = logging.getLogger("portal.errors")

TITLES = {
    400: "Bad request",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Check your input",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}
MESSAGES = {
    404: "We could not find that page. Check the address, or go back to the start page.",
    500: "An unexpected error happened on our side. It has been logged; please try again.",
    503: "The service cannot reach its database right now. Please try again in a moment.",
}


def render_error(code: int, message: str | None = None, template: str = "errors/error.html"):
    message = message or MESSAGES.get(code) or TITLES.get(code, "Error")
    if request.headers.get("HX-Request") or request_ctx.url_adapter is None:
        # htmx swaps a short message; a refused host gets no page that would build links.
        return message, code
    return render_template(
        template, code=code, title=TITLES.get(code, "Error"), message=message
    ), code


def handle_http(error: HTTPException):
    if isinstance(error, PartnerUnavailable):
        partner = g.get("unavailable_partner")
        return render_template("tenancy/unavailable.html", unavailable=partner), error.code
    code = error.code or 500
    message = error.description if code not in MESSAGES else None
    return render_error(code, message)


def handle_csrf(error: CSRFError):
    return render_error(
        400, "This form has expired or did not come from this site. Reload the page and try again."
    )


def handle_database_down(error: DBAPIError):
    db.session.rollback()
    log.error("database unavailable: %s", error.__class__.__name__)
    return render_error(503)


def handle_bad_value(error: DataError):
    """A value the database refuses (out of range, malformed): the request's fault, not ours."""
    db.session.rollback()
    log.warning("database refused a value: %s", error.orig.__class__.__name__)
    return render_error(400, "A value in this request is out of range or malformed.")


def handle_internal(error: InternalServerError):
    log.error("unhandled error", exc_info=error.original_exception or error)
    return render_error(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(InternalServerError, handle_internal)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(OperationalError, handle_database_down)
    app.register_error_handler(DataError, handle_bad_value)
