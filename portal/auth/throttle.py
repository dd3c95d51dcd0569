"""Login throttling with the `limits` library (the engine behind Flask-Limiter).

Only failed attempts count, per partner+email and per IP, in short moving windows: an
attacker is slowed to a handful of guesses per window, while a real user is never locked out
for longer than the window itself. Storage is in-memory by default and Redis when
`PORTAL_RATELIMIT_STORAGE_URL` is set, so the limits hold across processes.

While Redis does not answer (refused, or silent past its short socket timeouts), each process
counts in its own memory with the same limits, and tries Redis again after a cool-off. Failing
open would hand an attacker unlimited guesses exactly when something is wrong; failing closed
would lock every user out because of a cache. Per process, a guesser gets at most the limit
times the number of processes per window, and sign-in keeps working.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from portal.clock import utcnow
from portal.exceptions import PortalError

log = logging.getLogger("portal.throttle")

T = TypeVar("T")


class LoginThrottled(PortalError):
    """Too many failed attempts for this account or from this address, for now."""

    status = 429

    def __init__(self) -> None:
        super().__init__(
            "Too many failed sign-in attempts. Please wait a few minutes and try again."
        )


class LoginThrottle:
    def __init__(
        self,
        storage_url: str,
        prefix: str,
        per_account: str,
        per_ip: str,
        *,
        connect_timeout: float = 0.5,
        timeout: float = 0.5,
        retry_after: float = 30,
    ) -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        if not storage_url.startswith("memory://"):
            storage = storage_from_string(
                storage_url,
                wrap_exceptions=True,
                socket_connect_timeout=connect_timeout,
                socket_timeout=timeout,
                # No retries inside the client: the fallback below is the retry policy, and
                # redis-py's default backoff would hold a sign-in for seconds.
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
            )
            self.shared = MovingWindowRateLimiter(storage)
        self.prefix = prefix
        self.per_account = parse(per_account)
        self.per_ip = parse(per_ip)
        self.retry_after = timedelta(seconds=retry_after)
        self._lock = threading.Lock()
        self._fallback_until: datetime | None = None  # while set, counts stay in memory

    def _keys(self, scope: str, email: str, ip: str | None):
        return (
            (self.per_account, (self.prefix, "login-account", scope, email)),
            (self.per_ip, (self.prefix, "login-ip", ip or "unknown")),
        )

    def check(self, scope: str, email: str, ip: str | None) -> None:
        """Raise LoginThrottled when either limit is used up (before checking the password)."""
        if not all(self._test(limit, key) for limit, key in self._keys(scope, email, ip)):
            raise LoginThrottled()

    def failed(self, scope: str, email: str, ip: str | None) -> None:
        for limit, key in self._keys(scope, email, ip):
            self._hit(limit, key)

    def _test(self, limit: RateLimitItem, key: tuple[str, ...]) -> bool:
        return self._run(lambda limiter: limiter.test(limit, *key))

    def _hit(self, limit: RateLimitItem, key: tuple[str, ...]) -> bool:
        return self._run(lambda limiter: limiter.hit(limit, *key))

    def status(self) -> str:
        """For /readyz: `ok`, `degraded` (counting in memory for now) or `memory` (configured)."""
        if self.shared is None:
            return "memory"
        if self._falling_back():
            return "degraded"
        if self.shared.storage.check():
            self._recovered()
            return "ok"
        self._fall_back("it did not answer a ping")
        return "degraded"

    def reset(self) -> None:
        self.memory.storage.reset()
        if self.shared is not None:
            self.shared.storage.reset()

    def _run(self, operation: Callable[[MovingWindowRateLimiter], T]) -> T:
        """`operation` on the shared storage, or in memory while that one is away."""
        if self.shared is None or self._falling_back():
            return operation(self.memory)
        try:
            result = operation(self.shared)
        except StorageError as exc:
            error = exc.storage_error
            self._fall_back(f"{error.__class__.__name__}: {error}")
            return operation(self.memory)
        self._recovered()
        return result

    def _falling_back(self) -> bool:
        until = self._fallback_until
        return until is not None and utcnow() < until

    def _fall_back(self, reason: str) -> None:
        with self._lock:
            first = self._fallback_until is None
            self._fallback_until = utcnow() + self.retry_after
        if first:  # one warning per outage, not one per request
            log.warning(
                "rate-limit storage unavailable (%s); counting failed sign-ins in this "
                "process's memory, trying it again every %d s",
                reason,
                self.retry_after.total_seconds(),
            )

    def _recovered(self) -> None:
        if self._fallback_until is None:
            return
        with self._lock:
            was_down, self._fallback_until = self._fallback_until is not None, None
        if was_down:
            log.info("rate-limit storage answers again; failed sign-ins are shared again")


def login_throttle() -> LoginThrottle:
    return current_app.extensions["portal_login_throttle"]


def init_app(app: Flask) -> None:
    app.extensions["portal_login_throttle"] = LoginThrottle(
        app.config["RATELIMIT_STORAGE_URL"],
        app.config["RATELIMIT_KEY_PREFIX"],
        app.config["LOGIN_LIMIT_PER_ACCOUNT"],
        app.config["LOGIN_LIMIT_PER_IP"],
        connect_timeout=app.config["RATELIMIT_CONNECT_TIMEOUT"],
        timeout=app.config["RATELIMIT_TIMEOUT"],
        retry_after=app.config["RATELIMIT_RETRY_AFTER"],
    )
