"""`url_for` in templates, remembered per host for the links that take no arguments.

A page's header, menus and footer name the same two dozen endpoints on every request, and
building each through Werkzeug's map (with the partner's URL default) was a tenth of a page's
time. Without arguments the answer depends only on the app's URL map and the host the request
came in on (its scheme, name and script root, which also fix the partner's subdomain), so each
process keeps it per (host, endpoint). Anything else (values, `_external`, `_anchor`, an
endpoint relative to the current blueprint, no request) goes to Flask's own `url_for`.
"""

from __future__ import annotations

from typing import Any

import flask
from flask import Flask, current_app, g, has_request_context, request

_MEMO = "portal_template_urls"
_HOST = "portal_host_url"
# Hosts are the partners' and the root domain's; a flood of made-up Host headers only ever
# empties the map (a refused host builds nothing: it raises before anything is kept).
LIMIT = 10_000


def url_for(endpoint: str, **values: Any) -> str:
    if values or endpoint.startswith(".") or not has_request_context():
        return flask.url_for(endpoint, **values)
    memo: dict[tuple[str, str], str] = current_app.extensions[_MEMO]
    key = (request_host_url(), endpoint)
    url = memo.get(key)
    if url is None:
        url = flask.url_for(endpoint)
        if len(memo) >= LIMIT:
            memo.clear()
        memo[key] = url
    return url


def request_host_url() -> str:
    """The request's scheme, host and script root, worked out once per request."""
    host_url = g.get(_HOST)
    if host_url is None:
        host_url = g.setdefault(_HOST, request.host_url)
    return host_url


def init_app(app: Flask) -> None:
    app.extensions[_MEMO] = {}
    app.jinja_env.globals["url_for"] = url_for
