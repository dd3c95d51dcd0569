"""Response headers every page carries: no framing, no MIME sniffing, no leaking referrers.

Headers a view set itself win (`setdefault`); pages whose address carries a token send no
referrer at all.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.wrappers import Response

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Scripts only from this host's /static (no inline code, no eval), framing and plugins
    # off, <base> pinned. Styles stay open: htmx injects its indicator style.
    "Content-Security-Policy": (
        "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
    ),
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def add_headers(response: Response) -> Response:
    if request.view_args and "token" in request.view_args:
        # Pages whose address carries a token (reset, invitation, verification links) never
        # pass it on in a Referer header.
        response.headers["Referrer-Policy"] = "no-referrer"
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config["PORTAL_ENV"] == "production":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
