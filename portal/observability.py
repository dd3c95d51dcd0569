"""Request ids and structured log lines that carry request, partner and user.

The request id is the first thing a request gets, and log lines read only plain values kept in
`g` (the request id, the partner's slug and id, the principal's id), never ORM objects: after a
failed transaction those could not be read without the database.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, abort, current_app, g, has_request_context, request
from werkzeug.wrappers import Response

from portal.monitoring import metrics

access_log = logging.getLogger("portal.request")

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id() -> str:
    """This request's id: the caller's `X-Request-ID` when well-formed, else a new one."""
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.match(incoming) else secrets.token_hex(8)
    return g.request_id


def begin_request(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """The first url_value_preprocessor: before the partner is looked up in the database."""
    g.started_at = time.monotonic()
    request_id()


def refuse_nul_bytes() -> None:
    """No NUL characters anywhere in the input: PostgreSQL cannot store them in text."""
    for values in (request.args, request.form):
        for key, items in values.lists():
            if "\x00" in key or any("\x00" in item for item in items):
                abort(400, "The request contains a character that is not allowed (NUL).")


def echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = request_id()
    return response


def _impersonator() -> str | None:
    impersonation = g.get("impersonation")
    agent_id = getattr(impersonation, "agent_id", None)
    return f"user:{agent_id}" if agent_id is not None else None


def tier_of(partner_slug: str | None) -> str:
    """The metrics label for a host: `platform` on the root domain, else the partner's tier
    (PORTAL_METRICS_PARTNER_TIERS), never the partner itself."""
    if not partner_slug:
        return "platform"
    tiers = current_app.config.get("METRICS_PARTNER_TIERS") or {}
    return tiers.get(partner_slug, current_app.config.get("METRICS_DEFAULT_TIER", "standard"))


def log_request(response: Response) -> Response:
    """One access line and the request metrics, from plain values only.

    Never the path or the query string (invitation and reset tokens live there), never a
    header or the body: the endpoint and its rule say what was asked for.
    """
    seconds = time.monotonic() - g.get("started_at", time.monotonic())
    rule = request.url_rule
    endpoint = (rule.endpoint if rule is not None else None) or "unmatched"
    partner = g.get("partner_slug")
    metrics.request_answered(
        endpoint, request.method, response.status_code, tier_of(partner), seconds
    )
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "%s %s %s",
            request.method,
            endpoint,
            response.status_code,
            extra={
                "http": {
                    "method": request.method,
                    "endpoint": endpoint,
                    "route": rule.rule if rule is not None else None,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                    "ip": request.remote_addr,
                    "impersonator": _impersonator(),
                    "refused": _refused(response.status_code),
                }
            },
        )
    return response


def _refused(status: int) -> list[str] | None:
    """For a refused request (4xx, 5xx): the form fields that failed validation and the
    refusals the services raised, by name (`InviteForm`'s `email`, `AccountError(password)`),
    never what was typed."""
    if status < 400:
        return None
    named = list(dict.fromkeys(g.get("refused_fields", [])))
    for error in g.get("refusals", []):
        field = getattr(error, "field", None)
        named.append(f"{type(error).__name__}({field})" if field else type(error).__name__)
    return named or None


class ContextFilter(logging.Filter):
    """Adds request id, partner and user to every record logged during a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = record.partner = record.user = None
        if has_request_context():
            record.request_id = g.get("request_id")
            record.partner = g.get("partner_slug")
            record.user = g.get("principal_ref")
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "partner", "user", "audit_action", "target", "actor"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        for key, value in (getattr(record, "http", None) or {}).items():
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def init_app(app: Flask) -> None:
    app.url_value_preprocessor(begin_request)
    app.before_request(refuse_nul_bytes)
    app.after_request(echo_request_id)
    app.after_request(log_request)
    logger = logging.getLogger("portal")
    if not any(getattr(h, "_portal", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._portal = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
        logger.addHandler(handler)
    logger.setLevel(app.config["LOG_LEVEL"])
