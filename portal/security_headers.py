"""Response headers every page carries: no framing, no MIME sniffing, no leaking referrers,
no copies in caches.

Headers a view set itself win (`setdefault`), except `Cache-Control`; pages whose address
carries a token send no referrer at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request
from werkzeug.wrappers import Response

V = TypeVar("V", bound=Callable[..., Any])

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Scripts only from this host's /static (no inline code, no eval), framing and plugins
    # off, <base> pinned. Styles stay open: htmx injects its indicator style.
    "Content-Security-Policy": (
        "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def cacheable(view: V) -> V:
    """Mark a view whose answers are the same for everyone (static files): caches may keep them."""
    view.cacheable = True  # type: ignore[attr-defined]
    return view


def may_be_cached(response: Response) -> bool:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    return getattr(view, "cacheable", False) and response.status_code < 400


def add_headers(response: Response) -> Response:
    if request.view_args and "token" in request.view_args:
        # Pages whose address carries a token (reset, invitation, verification links) never
        # pass it on in a Referer header.
        response.headers["Referrer-Policy"] = "no-referrer"
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not may_be_cached(response):
        # Every page carries the visitor's CSRF token, most of them someone's data, some a
        # token in their address, exports a partner's records: no browser or proxy keeps one.
        response.headers["Cache-Control"] = "no-store"
    if current_app.config["PORTAL_ENV"] == "production":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
