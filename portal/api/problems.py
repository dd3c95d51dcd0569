"""The partner API's one error shape: {"error": {"code", "message", "details"}}.

The app's error handlers (`portal/errors.py`) answer every request under /api/ this way, so
a refusal from a service, a 404 from the router and a 500 all look alike to an integration.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from portal.exceptions import PortalError

API_PREFIX = "/api/"
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
# Refusals with a code more precise than their status's.
CODES_BY_REFUSAL = {
    "NeedsConfirmation": "needs_confirmation",
    "SubscriptionRefused": "transition_refused",
    "IdempotencyMismatch": "idempotency_key_reused",
    "InsufficientScope": "insufficient_scope",
}


class ApiRefusal(PortalError):
    """A refusal of the API itself (authentication, preconditions, limits)."""

    def __init__(self, message: str, *, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, status=status)
        self._headers = headers or {}

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


class InsufficientScope(ApiRefusal):
    pass


class IdempotencyMismatch(ApiRefusal):
    pass


def is_api_request() -> bool:
    """Any request under /api/, on any host, matched by a route or not."""
    return request.path.startswith(API_PREFIX)


def api_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "code": code or CODES.get(status, "error"),
            "message": message,
            "details": details or {},
        }
    }
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        if name.lower() in ("retry-after", "www-authenticate", "etag"):
            response.headers[name] = value
    return response


def refusal_response(error: PortalError) -> Response:
    details: dict[str, Any] = {}
    field = getattr(error, "field", None)
    if isinstance(field, str):
        details["field"] = field
    state = getattr(error, "state", None)
    if state is not None:
        details["state"] = getattr(state, "value", str(state))
    headers = error.headers  # api_error passes on Retry-After, WWW-Authenticate and ETag
    if not isinstance(error, ApiRefusal) and "X-Subscription-State" in headers:
        details.setdefault("state", headers["X-Subscription-State"])
    code = CODES_BY_REFUSAL.get(type(error).__name__)
    return api_error(error.status, error.message, code=code, details=details, headers=headers)
