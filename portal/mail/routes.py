"""/dev/outbox on the root domain: the outbox as a page, in development and testing only."""

from __future__ import annotations

import re

from flask import Blueprint, Flask, render_template, request
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


@dev_bp.get("/outbox")
@public  # a developer tool, never registered in production
def outbox() -> str:
    to = request.args.get("to", "").strip()[:254]
    return render_template(
        "mail/dev/outbox.html", entries=latest_messages(50, to or None), to=to, linkify=linkify
    )


def register(app: Flask) -> None:
    """Register the outbox page only where reading every partner's mail is harmless."""
    if app.config["PORTAL_ENV"] in DEV_ENVIRONMENTS:
        app.register_blueprint(dev_bp)
