"""Clear error pages (short messages for htmx); never a stack trace for a visitor.

The error path cannot fail: every handler first undoes the unit of work, pages are drawn from
plain values captured at the start of the request (`g.site`, the request id), server errors
leave out everything that would need the database, and if drawing the page fails anyway a
fixed page is sent. Every 500 writes exactly one JSON log line with the traceback, and its page
shows the request id to quote.
"""

from __future__ import annotations

import logging
from html import escape

from flask import Flask, flash, g, redirect, render_template, request, session
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError
from werkzeug.wrappers import Response

from portal import unit_of_work
from portal.api.problems import api_error, is_api_request, refusal_response
from portal.exceptions import Conflict, PortalError
from portal.observability import request_id
from portal.redirects import local_path
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
    413: "This request is larger than this page accepts.",
    500: "An unexpected error happened on our side. It has been logged; please try again.",
    503: "The service cannot reach its database right now. Please try again in a moment.",
}
BUSY = (
    "Another change to the same data is being saved right now, and this one could not wait "
    "for it. Nothing was changed; please try again in a moment."
)
# Not the refused host's name: that is the sender's text, never repeated back.
UNTRUSTED_HOST = "This address is not served here."
FALLBACK_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>{title}</title></head><body><main><h1>{title}</h1><p>{message}</p>{reference}"
    '<p><a href="/">Go to the start page</a></p></main></body></html>'
)


def render_error(code: int, message: str | None = None) -> Response:
    """The error page for `code`; server errors (5xx) carry the request id to quote."""
    message = message or MESSAGES.get(code) or TITLES.get(code, "Error")
    title = TITLES.get(code, "Error")
    reference = request_id() if code >= 500 else None
    if is_api_request():
        details = {"request_id": reference} if reference else None
        if code == 404 and message == MESSAGES[404]:
            message = "No such resource here."
        return api_error(code, message, details=details)
    if request.headers.get("HX-Request") or request_ctx.url_adapter is None:
        # htmx swaps a short message; a refused host gets no page that would build links.
        text = f"{message} (reference {reference})" if reference else message
        return Response(text, code, {"X-Content-Type-Options": "nosniff"}, mimetype="text/plain")
    try:
        # A server error may mean the database is gone: no navigation, which would need it.
        page = render_template(
            "errors/error.html",
            code=code,
            title=title,
            message=message,
            reference=reference,
            plain_page=code >= 500,
        )
    except Exception:
        log.warning("the error page could not be drawn; sent the fixed one", exc_info=True)
        quoted = f"<p>Reference: <code>{escape(reference)}</code></p>" if reference else ""
        page = FALLBACK_PAGE.format(title=escape(title), message=escape(message), reference=quoted)
    return Response(page, code, mimetype="text/html")


def handle_refusal(error: PortalError) -> Response:
    """A refusal that no view showed itself: undo the request, then say why."""
    unit_of_work.rollback()
    if is_api_request():
        return refusal_response(error)
    if request.method in ("GET", "HEAD") or request_ctx.url_adapter is None:
        return render_error(error.status, error.message)
    if request.headers.get("HX-Request"):
        return Response(error.message, error.status, error.headers)
    # A form post: back to the page the form was on, with the reason.
    back = local_path(_same_host_referrer(), "")
    if not back:
        return render_error(error.status, error.message)
    _forget_success_messages()
    flash(error.message, "error")
    return redirect(back)


def _same_host_referrer() -> str:
    referrer = request.referrer or ""
    origin = request.host_url.rstrip("/")
    return referrer[len(origin) :] if referrer.startswith(origin + "/") else ""


def _forget_success_messages() -> None:
    """A view may have said "saved" before its commit failed: that message is not true."""
    flashes = session.get("_flashes")
    if flashes:
        session["_flashes"] = [(c, m) for c, m in flashes if c != "info"]


def handle_http(error: HTTPException) -> Response | tuple[str, int]:
    unit_of_work.rollback()
    if isinstance(error, PartnerUnavailable):
        name = g.get("unavailable_partner")
        closed = error.code == 410  # PartnerClosed: offboarded for good
        return render_template(
            "tenancy/unavailable.html", unavailable=name, closed=closed
        ), error.code
    code = error.code or 500
    if isinstance(error, SecurityError):  # TRUSTED_HOSTS refused the Host header
        log.warning("refused host %r", request.environ.get("HTTP_HOST", "")[:100])
        return render_error(code, UNTRUSTED_HOST)
    if code == 403:
        log.warning("refused: %s %s", request.method, request.path[:200])
    message = error.description if code not in MESSAGES else None
    return render_error(code, message)


def handle_csrf(error: CSRFError) -> Response:
    unit_of_work.rollback()
    if is_api_request():
        return api_error(400, "Bad request.")
    log.warning("refused: %s %s without a valid CSRF token", request.method, request.path[:200])
    return render_error(
        400, "This form has expired or did not come from this site. Reload the page and try again."
    )


def handle_database_down(error: Exception) -> Response:
    unit_of_work.rollback()
    if unit_of_work.lost_race(error):
        return handle_refusal(Conflict())
    _forget_success_messages()
    if unit_of_work.busy(error):
        log.warning("gave up waiting for a lock: %s", error.__class__.__name__)
        return render_error(503, BUSY)
    cause = getattr(error, "orig", None) or error
    log.error("database unavailable: %s", cause.__class__.__name__)
    return render_error(503)


def handle_integrity(error: Exception) -> Response:
    """A unique key or a version check refused a write another request made first: a
    Conflict. Any other broken constraint is a bug, answered like every unexpected error."""
    if unit_of_work.lost_race(error):
        return handle_refusal(Conflict())
    return handle_internal(InternalServerError(original_exception=error))


def handle_bad_value(error: DataError) -> Response:
    """A value the database refuses (out of range, malformed): the request's fault, not ours."""
    unit_of_work.rollback()
    log.warning("database refused a value: %s", error.orig.__class__.__name__)
    return render_error(400, "A value in this request is out of range or malformed.")


def handle_internal(error: InternalServerError) -> Response:
    """Every unexpected error: one JSON log line with the traceback, a page with the reference."""
    unit_of_work.rollback()
    _forget_success_messages()
    original = error.original_exception or error
    log.error("unhandled error", exc_info=(type(original), original, original.__traceback__))
    return render_error(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(PortalError, handle_refusal)
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(InternalServerError, handle_internal)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(OperationalError, handle_database_down)
    app.register_error_handler(PoolTimeout, handle_database_down)
    app.register_error_handler(DataError, handle_bad_value)
    app.register_error_handler(IntegrityError, handle_integrity)
    app.register_error_handler(StaleDataError, handle_integrity)
