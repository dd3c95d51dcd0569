"""Throttling with the `limits` library (the engine behind Flask-Limiter): failed sign-ins, the
emails an anonymous visitor can make the portal send (sign-up, password reset), and the
invitations a partner's admins (or a stolen admin session, or API client) can make it send.

Every key carries its host's scope, a partner's id or `operators` for the root domain, so
what happens on one partner's host never counts on another's or on the operator console.

Sign-in counts only failures, in short moving windows, and only attempts it let through: an
attempt refused because a limit is used up costs the attacker nothing and renews nothing.
Three limits apply, each checked before the password:

- per account and client address (5 / 5 min): the guesses one address gets at one account;
- per account from anywhere (20 / 5 min): the bound on a guesser spread over many addresses;
- per client address on the host (30 / 5 min): one address guessing at many accounts.

So an attacker on one address can keep only themselves out; an account is locked for everyone
only when failures come from at least four addresses (20 / 5), and then for at most the window
after they stop.

Mail: requests that may send a link count per client address and per partner (every request,
whether the address exists or not, so the limits answer the same for both), and the links and
notices sent to one address count per address. A limited request sends nothing and gets the
same answer as any other.

Invitations an admin sends (new, or sent again) count per partner and per address; one too
many is refused with the wait, nothing counted. The address is not secret there: the admin
already sees every user of the partner.

Storage is in-memory by default and Redis when `PORTAL_RATELIMIT_STORAGE_URL` is set, so the
limits hold across processes. While Redis does not answer (refused, or silent past its short
socket timeouts), each process counts in its own memory with the same limits, and tries Redis
again after a cool-off. Failing open would hand an attacker unlimited guesses exactly when
something is wrong; failing closed would lock every user out because of a cache. Per process,
a guesser gets at most the limit times the number of processes per window, and sign-in keeps
working.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.connection import Connection, SSLConnection
from redis.exceptions import TimeoutError as RedisTimeout
from redis.retry import Retry

from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.resolver import resolve

log = logging.getLogger("portal.throttle")

T = TypeVar("T")
Key = tuple[str, ...]
Check = tuple[RateLimitItem, Key]


def client_key(ip: str | None) -> str:
    """The client a limit counts: the IPv4 address, or the IPv6 /64 (one host can hold a whole
    /64, so counting single IPv6 addresses would let it make its own crowd)."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class LoginThrottled(PortalError):
    """Too many failed attempts for this account or from this address, for now."""

    status = 429

    def __init__(self) -> None:
        super().__init__(
            "Too many failed sign-in attempts. Please wait a few minutes and try again."
        )


@dataclass(frozen=True)
class Limits:
    """How many of each thing are allowed in a moving window."""

    login_per_account_ip: RateLimitItem
    login_per_account: RateLimitItem
    login_per_ip: RateLimitItem
    mail_per_ip: RateLimitItem
    mail_per_partner: RateLimitItem
    mail_per_address: RateLimitItem
    notice_per_address: RateLimitItem
    invite_per_partner: RateLimitItem
    invite_per_address: RateLimitItem
    api_per_client: RateLimitItem


class LookedUpConnection(Connection):
    """redis-py's TCP connection, with the server's name looked up within the connect timeout.

    redis-py asks the system resolver itself, before its connect timeout starts, and the
    resolver retries for seconds on its own: a DNS that stopped answering would hold every
    sign-in that long. The name is looked up with a deadline (`portal.resolver`) and the
    connection made to the addresses found; the name is kept for everything else (TLS).
    """

    def _connect(self) -> socket.socket:
        name = self.host
        timeout = self.socket_connect_timeout or 0.5
        try:
            addresses = resolve(name, self.port, timeout)
        except TimeoutError:
            raise RedisTimeout(
                f"Redis's name {name} could not be resolved within {timeout:g} s"
            ) from None
        failed: OSError = OSError(f"no address for {name}")
        for address in addresses:
            # An address: redis-py's own lookup of it answers at once. The connection is its
            # thread's alone while it connects (with RESP2, the default: RESP3's maintenance
            # notifications would have the pool read connections' hosts from other threads).
            self.host = address
            try:
                return super()._connect()
            except OSError as exc:
                failed = exc
            finally:
                self.host = name
        raise failed


class LookedUpSSLConnection(SSLConnection, LookedUpConnection):
    """The TLS connection (`rediss://`): the socket made as above, wrapped for the name."""


def _connection_class(url: str) -> dict[str, type[Connection]]:
    """The connection class for a Redis URL that names a server over TCP (none for a Unix
    socket, a Sentinel or a cluster, which redis-py connects its own way)."""
    if url.startswith("redis://"):
        return {"connection_class": LookedUpConnection}
    if url.startswith("rediss://"):
        return {"connection_class": LookedUpSSLConnection}
    return {}


class Throttle:
    """Moving-window counters shared by every process (Redis), or per process meanwhile."""

    def __init__(
        self,
        storage_url: str,
        prefix: str,
        limits: Limits,
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
                **_connection_class(storage_url),
            )
            self.shared = MovingWindowRateLimiter(storage)
        self.prefix = prefix
        self.limits = limits
        self.retry_after = timedelta(seconds=retry_after)
        self._lock = threading.Lock()
        self._fallback_until: datetime | None = None  # while set, counts stay in memory

    # --- Sign-in ------------------------------------------------------------------------------

    def _login_checks(self, scope: str, email: str, ip: str | None) -> list[Check]:
        ip = client_key(ip)
        return [
            (self.limits.login_per_account_ip, ("login-account-ip", scope, email, ip)),
            (self.limits.login_per_account, ("login-account", scope, email)),
            (self.limits.login_per_ip, ("login-ip", scope, ip)),
        ]

    def check_login(self, scope: str, email: str, ip: str | None) -> None:
        """Raise LoginThrottled when a limit is used up (before the password is looked at)."""
        if not self._within(self._login_checks(scope, email, ip)):
            raise LoginThrottled()

    def login_failed(self, scope: str, email: str, ip: str | None) -> None:
        """Count a failed attempt that `check_login` let through."""
        self._hit(self._login_checks(scope, email, ip))

    def _client_checks(self, scope: str, ip: str | None) -> list[Check]:
        return [(self.limits.login_per_ip, ("login-ip", scope, client_key(ip)))]

    def check_client(self, scope: str, ip: str | None) -> None:
        """Raise LoginThrottled when this client used up its failures on the host (single
        sign-on, where no account is named before the provider answers)."""
        if not self._within(self._client_checks(scope, ip)):
            raise LoginThrottled()

    def client_failed(self, scope: str, ip: str | None) -> None:
        """Count a failed single sign-on against the client's per-host limit."""
        self._hit(self._client_checks(scope, ip))

    # --- Mail ---------------------------------------------------------------------------------

    def mail_request(self, scope: str, ip: str | None) -> str | None:
        """Count a request that may send mail; the name of the limit it exceeds, if any.

        A refused request is not counted, so a steady stream of them does not keep a shared
        address (an office behind one router) refused for longer than the window.
        """
        checks = [
            (self.limits.mail_per_ip, ("mail-ip", scope, client_key(ip))),
            (self.limits.mail_per_partner, ("mail-partner", scope)),
        ]
        # Each counted and checked in one step: of many requests at once, no more get through
        # than the limit allows (a refused one is not counted by the limit that refused it).
        for (limit, key), name in zip(checks, ("client address", "partner"), strict=True):
            if not self._run(
                lambda limiter, limit=limit, key=key: limiter.hit(limit, self.prefix, *key)
            ):
                return name
        return None

    def mail_to(self, scope: str, address: str, *, notice: bool = False) -> bool:
        """Count one more email to `address`; False (and nothing counted) when it is one too many.

        Links (sign-up confirmation, password reset) and "someone tried to sign up with your
        address" notices have limits of their own.
        """
        if notice:
            check = (self.limits.notice_per_address, ("mail-notice", scope, address))
        else:
            check = (self.limits.mail_per_address, ("mail-link", scope, address))
        return self._run(lambda limiter: limiter.hit(check[0], self.prefix, *check[1]))

    def invitation(self, scope: str, address: str) -> tuple[str, RateLimitItem, int] | None:
        """Count one invitation email to `address`; when it is one too many, the limit it
        exceeds (`partner` or `address`), that limit and the seconds to wait, nothing counted.

        Callers hold the partner's write lock, so the test and the count of one invitation
        are not split by another of the same partner.
        """
        checks = [
            ("partner", self.limits.invite_per_partner, ("invite-partner", scope)),
            ("address", self.limits.invite_per_address, ("invite-address", scope, address)),
        ]
        for name, limit, key in checks:
            if not self._test(limit, key):
                return name, limit, self._wait(limit, key)
        for name, limit, key in checks:
            if not self._run(
                lambda limiter, limit=limit, key=key: limiter.hit(limit, self.prefix, *key)
            ):
                return name, limit, self._wait(limit, key)
        return None

    # --- Partner API ------------------------------------------------------------------------

    def api_request(self, scope: str, client_id: str) -> int | None:
        """Count one API request of a client; the seconds to wait when it is one too many
        (a refused request is not counted)."""
        limit = self.limits.api_per_client
        key = ("api-client", scope, client_id)
        if self._run(lambda limiter: limiter.hit(limit, self.prefix, *key)):
            return None
        return self._wait(limit, key)

    # --- Storage ------------------------------------------------------------------------------

    def _within(self, checks: list[Check]) -> bool:
        return all(self._test(limit, key) for limit, key in checks)

    def _hit(self, checks: list[Check]) -> None:
        for limit, key in checks:
            self._run(lambda limiter, limit=limit, key=key: limiter.hit(limit, self.prefix, *key))

    def _test(self, limit: RateLimitItem, key: Key) -> bool:
        return self._run(lambda limiter: limiter.test(limit, self.prefix, *key))

    def _wait(self, limit: RateLimitItem, key: Key) -> int:
        """Seconds until `key` may count one more under `limit`."""
        reset, _remaining = self._run(
            lambda limiter: limiter.get_window_stats(limit, self.prefix, *key)
        )
        return max(1, int(reset - time.time()) + 1)

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
                "rate-limit storage unavailable (%s); counting failed sign-ins and mail "
                "requests in this process's memory, trying it again every %d s",
                reason,
                self.retry_after.total_seconds(),
            )

    def _recovered(self) -> None:
        if self._fallback_until is None:
            return
        with self._lock:
            was_down, self._fallback_until = self._fallback_until is not None, None
        if was_down:
            log.info("rate-limit storage answers again; its counts are shared again")


def throttle() -> Throttle:
    return current_app.extensions["portal_throttle"]


def init_app(app: Flask) -> None:
    config = app.config
    limits = Limits(
        login_per_account_ip=parse(config["LOGIN_LIMIT_PER_ACCOUNT"]),
        login_per_account=parse(config["LOGIN_LIMIT_PER_ACCOUNT_ANY_IP"]),
        login_per_ip=parse(config["LOGIN_LIMIT_PER_IP"]),
        mail_per_ip=parse(config["MAIL_LIMIT_PER_IP"]),
        mail_per_partner=parse(config["MAIL_LIMIT_PER_PARTNER"]),
        mail_per_address=parse(config["MAIL_LIMIT_PER_ADDRESS"]),
        notice_per_address=parse(config["SIGNUP_NOTICE_PER_ADDRESS"]),
        invite_per_partner=parse(config["INVITE_LIMIT_PER_PARTNER"]),
        invite_per_address=parse(config["INVITE_LIMIT_PER_ADDRESS"]),
        api_per_client=parse(config["API_LIMIT_PER_CLIENT"]),
    )
    app.extensions["portal_throttle"] = Throttle(
        config["RATELIMIT_STORAGE_URL"],
        config["RATELIMIT_KEY_PREFIX"],
        limits,
        connect_timeout=config["RATELIMIT_CONNECT_TIMEOUT"],
        timeout=config["RATELIMIT_TIMEOUT"],
        retry_after=config["RATELIMIT_RETRY_AFTER"],
    )
