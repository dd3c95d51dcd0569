"""Static files on partner hosts too, so pages load assets from their own origin."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, has_request_context, url_for
from werkzeug.wrappers import Response

from portal.auth.guards import public
from portal.security_headers import cacheable
from portal.template_urls import LIMIT, request_host_url
from portal.tenancy.context import exempt_from_tenancy

# Each host's path of each asset, kept per process (as template_urls does for links).
_ASSETS = "portal_asset_urls"


@public
@cacheable
@exempt_from_tenancy
def partner_static(filename: str) -> Response:
    return current_app.send_static_file(filename)


@public
@cacheable
def root_static(filename: str) -> Response:
    return current_app.send_static_file(filename)


def asset_url(filename: str) -> str:
    """URL of a static file on the current host: a path, never another origin, which the
    Content-Security-Policy ('self') would block. Every host serves /static/, also the host
    of a partner that does not exist (its 404 page)."""
    if not has_request_context():
        return urlsplit(url_for("static", filename=filename)).path
    memo: dict[tuple[str, str], str] = current_app.extensions[_ASSETS]
    key = (request_host_url(), filename)
    path = memo.get(key)
    if path is None:
        path = urlsplit(url_for("static", filename=filename)).path
        if len(memo) >= LIMIT:
            memo.clear()
        memo[key] = path
    return path


def register(app: Flask) -> None:
    app.extensions[_ASSETS] = {}
    app.view_functions["static"] = root_static
    app.add_url_rule(
        "/static/<path:filename>", "partner_static", partner_static, subdomain="<partner>"
    )
    app.jinja_env.globals["asset_url"] = asset_url
