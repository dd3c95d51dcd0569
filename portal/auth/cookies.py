"""The authentication cookie: host-only, HttpOnly, SameSite=Lax, Secure in production."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, request
from werkzeug.wrappers import Response


def cookie_name() -> str:
    return current_app.config["AUTH_COOKIE_NAME"]


def read_token() -> str | None:
    return request.cookies.get(cookie_name()) or None


def _attributes() -> dict[str, object]:
    # No Domain attribute: a cookie stays on the exact host that issued it.
    return {
        "path": "/",
        "secure": current_app.config["SESSION_COOKIE_SECURE"],
        "httponly": True,
        "samesite": "Lax",
    }


def set_auth_cookie(response: Response, token: str, *, expires: datetime | None = None) -> None:
    response.set_cookie(cookie_name(), token, expires=expires, **_attributes())


def clear_auth_cookie(response: Response) -> None:
    response.delete_cookie(cookie_name(), **_attributes())


# While a support agent acts as a user, the auth cookie carries that support session and this
# one the agent's own session, set aside to return to (same attributes: host-only, HttpOnly).
# It is read only when the support session ends.
def return_cookie_name() -> str:
    return cookie_name() + "_return"


def read_return_token() -> str | None:
    return request.cookies.get(return_cookie_name()) or None


def set_return_cookie(response: Response, token: str, *, expires: datetime | None = None) -> None:
    response.set_cookie(return_cookie_name(), token, expires=expires, **_attributes())


def clear_return_cookie(response: Response) -> None:
    response.delete_cookie(return_cookie_name(), **_attributes())
