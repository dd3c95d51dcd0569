"""Request ids and structured log lines that carry request, partner and user."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from typing import Any

from flask import Flask, abort, g, has_request_context, request
from werkzeug.wrappers import Response

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID_RE.match(incoming) else secrets.token_hex(8)


def refuse_nul_bytes() -> None:
    """No NUL characters anywhere in the input: PostgreSQL cannot store them in text."""
    for values in (request.args, request.form):
        for key, items in values.lists():
            if "\x00" in key or any("\x00" in item for item in items):
                abort(400, "The request contains a character that is not allowed (NUL).")


def echo_request_id(response: Response) -> Response:
    if "request_id" in g:
        response.headers["X-Request-ID"] = g.request_id
    return response


class ContextFilter(logging.Filter):
    """Adds request id, partner and user to every record logged during a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = record.partner = record.user = None
        if has_request_context():
            record.request_id = g.get("request_id")
            partner = g.get("partner")
            record.partner = partner.slug if partner is not None else None
            session = g.get("user_session") or g.get("operator_session")
            record.user = getattr(session, "user_id", None) or getattr(session, "operator_id", None)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "partner", "user", "audit_action", "target", "actor"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def init_app(app: Flask) -> None:
    app.before_request(assign_request_id)
    app.before_request(refuse_nul_bytes)
    app.after_request(echo_request_id)
    logger = logging.getLogger("portal")
    if not any(getattr(h, "_portal", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._portal = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
        logger.addHandler(handler)
    logger.setLevel(app.config["LOG_LEVEL"])
