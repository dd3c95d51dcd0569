"""Safe by default: every view needs a login unless it visibly opts out with `@public`."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.redirects import local_path


def public(view: Any) -> Any:
    """Mark a view that anonymous visitors may reach (login page, health checks)."""
    view.is_public = True
    return view


def is_public_endpoint(endpoint: str | None) -> bool:
    """No cookie sign-in needed: public views, and partner API views, which authenticate
    with a bearer token of their own (`portal/api/http.py`) and never look at cookies."""
    view = current_app.view_functions.get(endpoint) if endpoint else None
    return (
        view is None
        or getattr(view, "is_public", False)
        or getattr(view, "bearer_scope", None) is not None
    )


def principal_kind() -> str | None:
    """'user' for a partner user, 'operator' for an operator, None for an anonymous visitor."""
    if not current_user.is_authenticated:
        return None
    return current_user.kind


def return_path() -> str | None:
    """The page to come back to after signing in: this one when it is a page (GET), else the
    page the browser shows (htmx says which; a form post's referrer on this host). A form's
    target is never the `next`: after signing in it would be a "method not allowed" page."""
    if request.headers.get("HX-Request"):
        return same_host_path(request.headers.get("HX-Current-URL"))
    if request.method == "GET":
        return request.full_path.rstrip("?")
    return same_host_path(request.referrer)


def same_host_path(url: str | None) -> str | None:
    """The path (and query) of `url` when it is an address on this host, else None."""
    origin = request.host_url.rstrip("/")
    if not url or not url.startswith(origin + "/"):
        return None
    return local_path(url[len(origin) :], "") or None


def login_redirect() -> Response:
    endpoint = "auth.login" if g.get("on_partner_host") else "operator.login"
    back = return_path()
    target = url_for(endpoint, next=back) if back and back != "/" else url_for(endpoint)
    if request.headers.get("HX-Request"):
        return Response(
            "Your session has ended. Please sign in again.", 401, {"HX-Redirect": target}
        )
    return redirect(target)


def back_home() -> Response:
    """A support session ended before this request: its page or form was the user's, so
    nothing of it runs for the agent; they start again from their home page."""
    target = url_for("home.index")
    if request.headers.get("HX-Request"):
        return Response("", 200, {"HX-Redirect": target})
    return redirect(target)


def require_login() -> Response | None:
    """before_request: partner hosts need a user of that partner, the root domain an operator."""
    if is_public_endpoint(request.endpoint):
        return None
    wanted = "user" if g.get("on_partner_host") else "operator"
    if principal_kind() != wanted:
        return login_redirect()
    if g.get("impersonation_over"):
        return back_home()
    return None


def init_app(app: Flask) -> None:
    app.before_request(require_login)
