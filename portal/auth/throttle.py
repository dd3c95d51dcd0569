"""Login throttling with the `limits` library (the engine behind Flask-Limiter).

Only failed attempts count, per partner+email and per IP, in short moving windows: an
attacker is slowed to a handful of guesses per window, while a real user is never locked out
for longer than the window itself. Storage is in-memory by default and Redis when
`PORTAL_RATELIMIT_STORAGE_URL` is set, so the limits hold across processes.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from portal.exceptions import PortalError

log = logging.getLogger("portal.throttle")


class LoginThrottled(PortalError):
    """Too many failed attempts for this account or from this address, for now."""

    status = 429

    def __init__(self) -> None:
        super().__init__(
            "Too many failed sign-in attempts. Please wait a few minutes and try again."
        )


class LoginThrottle:
    def __init__(self, storage_url: str, prefix: str, per_account: str, per_ip: str) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_url))
        self.prefix = prefix
        self.per_account = parse(per_account)
        self.per_ip = parse(per_ip)

    def _keys(self, scope: str, email: str, ip: str | None):
        return (
            (self.per_account, (self.prefix, "login-account", scope, email)),
            (self.per_ip, (self.prefix, "login-ip", ip or "unknown")),
        )

    def check(self, scope: str, email: str, ip: str | None) -> None:
        """Raise LoginThrottled when either limit is used up (before checking the password)."""
        try:
            allowed = all(
                self.limiter.test(limit, *key) for limit, key in self._keys(scope, email, ip)
            )
        except Exception:  # storage down: fail open, loudly
            log.exception("rate-limit storage unavailable; not throttling")
            return
        if not allowed:
            raise LoginThrottled()

    def failed(self, scope: str, email: str, ip: str | None) -> None:
        try:
            for limit, key in self._keys(scope, email, ip):
                self.limiter.hit(limit, *key)
        except Exception:
            log.exception("rate-limit storage unavailable; failure not counted")

    def reset(self) -> None:
        self.limiter.storage.reset()


def login_throttle() -> LoginThrottle:
    return current_app.extensions["portal_login_throttle"]


def init_app(app: Flask) -> None:
    app.extensions["portal_login_throttle"] = LoginThrottle(
        app.config["RATELIMIT_STORAGE_URL"],
        app.config["RATELIMIT_KEY_PREFIX"],
        app.config["LOGIN_LIMIT_PER_ACCOUNT"],
        app.config["LOGIN_LIMIT_PER_IP"],
    )
