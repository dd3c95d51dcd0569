"""Every HTTP call to a partner's identity provider: bounded in time, size and destination.

A request to the portal shares one budget (`PORTAL_OIDC_TIMEOUT`, 3 s by default) among all
the calls it makes to the provider (discovery, keys, token), name lookups, connecting and
reading included, so a provider that hangs or drips, or whose DNS is slow, costs a sign-in a
few seconds, never a worker. Answers are read up to `MAX_ANSWER` bytes; redirects are not
followed. Outside development a provider must be https on a public address (a partner admin
must not make the portal fetch from its own network); every address a call goes to is
checked, not only the one typed in.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app, g, has_app_context
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from portal.exceptions import Invalid, PortalError
from portal.resolver import resolve

MAX_ANSWER = 256 * 1024  # bytes: discovery documents and key sets are a few kilobytes
# The call in progress: its host and the addresses check_address approved for it.
_approved: ContextVar[dict[str, list[str]] | None] = ContextVar("oidc_approved", default=None)


class ProviderUnavailable(PortalError):
    """The provider could not be reached, was too slow, or answered with something unusable."""

    status = 503


class AddressRefused(Invalid):
    """An address the portal will not call."""


def allow_private() -> bool:
    return bool(current_app.config["OIDC_ALLOW_PRIVATE"]) if has_app_context() else False


def check_address(url: str) -> list[str]:
    """Refuse an address the portal must not call: not http(s), credentials in it, or (in
    production) plain http or a host that resolves to a loopback, private or reserved address.
    The host's addresses, checked (none where private addresses are allowed: not looked up)."""
    parts = urlsplit(url)
    private_ok = allow_private()
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise AddressRefused(f"{url[:200]} is not a web address (https://…).")
    if parts.username or parts.password:
        raise AddressRefused("The address must not carry a user name or password.")
    if parts.scheme == "http" and not private_ok:
        raise AddressRefused(f"{parts.hostname} must be reached over https, not http.")
    if private_ok:
        return []
    addresses = _resolve(parts.hostname, parts.port or 443)
    for address in addresses:
        if not ipaddress.ip_address(address).is_global:
            raise AddressRefused(
                f"{parts.hostname} resolves to a private or reserved address ({address}); "
                "the portal calls identity providers on public addresses only."
            )
    return addresses


def _resolve(host: str, port: int) -> list[str]:
    """The host's addresses, looked up within what is left of the request's budget."""
    remaining = _remaining()
    if remaining <= 0:
        raise _too_slow(host)
    try:
        return resolve(host, port, remaining)
    except TimeoutError as exc:
        seconds = current_app.config["OIDC_TIMEOUT"]
        raise ProviderUnavailable(
            f"The identity provider's address ({host}) could not be resolved within "
            f"{seconds:g} seconds."
        ) from exc
    except (OSError, UnicodeError) as exc:
        raise ProviderUnavailable(f"The name {host} could not be resolved.") from exc


def start_budget() -> None:
    """This request's calls to the provider, together, get PORTAL_OIDC_TIMEOUT seconds."""
    g.oidc_deadline = time.monotonic() + current_app.config["OIDC_TIMEOUT"]


def _remaining() -> float:
    deadline = g.get("oidc_deadline") if has_app_context() else None
    if deadline is None:
        start_budget()
        deadline = g.oidc_deadline
    return deadline - time.monotonic()


def _too_slow(host: str) -> ProviderUnavailable:
    seconds = current_app.config["OIDC_TIMEOUT"]
    return ProviderUnavailable(
        f"The identity provider ({host}) did not answer within {seconds:g} seconds."
    )


class _Pinned:
    """A connection to one of the addresses `check_address` approved for its host, never
    through a second lookup of the name: that one would be unbounded again, and could answer
    differently (a private address once the check has passed)."""

    host: str
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        approved = (_approved.get() or {}).get(self.host.lower())
        if not approved:  # development, where private addresses are allowed: no lookup made
            return super()._new_conn()  # type: ignore[misc]
        *others, last = approved
        for address in others:  # the next address when one refuses; a timeout ends the call
            try:
                return self._connect_to(address)
            except NewConnectionError:
                continue
        return self._connect_to(last)

    def _connect_to(self, address: str) -> socket.socket:
        name, self._dns_host = self._dns_host, address
        try:
            return super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = name  # the name again: TLS checks the certificate against it


class _PinnedHTTPConnection(_Pinned, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_Pinned, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _PinnedHTTPPool,
            "https": _PinnedHTTPSPool,
        }


class ProviderSession(OAuth2Session):
    """Authlib's requests session, held to the rules above for every call it makes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for scheme in ("https://", "http://"):
            self.mount(scheme, _PinnedAdapter())

    def request(self, method, url, withhold_token=False, auth=None, **kwargs):  # type: ignore[override]
        host = urlsplit(url).hostname or url[:100]
        addresses = check_address(url)
        remaining = _remaining()
        if remaining <= 0:
            raise _too_slow(host)
        kwargs.update(timeout=remaining, allow_redirects=False, stream=True)
        approved = _approved.set({host.rstrip("."): addresses})
        try:
            response = super().request(method, url, withhold_token, auth, **kwargs)
        except requests.Timeout as exc:
            raise _too_slow(host) from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                f"The identity provider ({host}) could not be reached."
            ) from exc
        finally:
            _approved.reset(approved)
        with response:
            body = bytearray()
            try:
                for chunk in response.iter_content(8192):
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise ProviderUnavailable(
                            f"The identity provider ({host}) sent an answer larger than "
                            f"{MAX_ANSWER // 1024} KiB."
                        )
                    if time.monotonic() > g.oidc_deadline:
                        raise _too_slow(host)
            except requests.RequestException as exc:
                raise _too_slow(host) from exc
        response._content = bytes(body)
        if response.is_redirect:
            raise ProviderUnavailable(
                f"The identity provider ({host}) answered with a redirect to another address; "
                "enter the final address."
            )
        return response
