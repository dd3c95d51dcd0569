"""/dev/outbox on the root domain: the outbox as a page, in development and testing only,
and only to a browser on this machine."""

from __future__ import annotations

import ipaddress
import re

from flask import Blueprint, Flask, abort, render_template, request
from markupsafe import Markup, escape

from portal.auth.guards import public
from portal.mail.outbox import latest_messages

DEV_ENVIRONMENTS = ("development", "testing")
URL_RE = re.compile(r"https?://[^\s<>\"']+")
TRAILING_PUNCTUATION = ".,;:!?)"

dev_bp = Blueprint("mail_dev", __name__, url_prefix="/dev")


def linkify(text: str) -> Markup:
    """Escape `text` and make its http(s) addresses clickable; nothing else becomes markup."""

    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        trimmed = url.rstrip(TRAILING_PUNCTUATION)
        # `url` is already HTML-escaped, so it is safe inside the quoted attribute.
        return f'<a href="{trimmed}" rel="noopener noreferrer">{trimmed}</a>{url[len(trimmed) :]}'

    return Markup(URL_RE.sub(link, str(escape(text))))


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


@dev_bp.before_request
def only_from_this_machine() -> None:
    """A development server reachable from the network shows nobody else every reset link."""
    if not is_loopback(request.remote_addr):
        abort(404)


@dev_bp.get("/outbox")
@public  # a developer tool, never registered in production
def outbox() -> str:
    to = request.args.get("to", "").strip()[:254]
    return render_template(
        "mail/dev/outbox.html", entries=latest_messages(50, to or None), to=to, linkify=linkify
    )


def register(app: Flask) -> None:
    """Register the outbox page only where reading every partner's mail is harmless.

    Testing counts: the suite is a development machine of its own.
    """
    if app.config["PORTAL_ENV"] in DEV_ENVIRONMENTS:
        app.register_blueprint(dev_bp)
