"""One Authlib OpenID Connect client per partner and configuration version.

A client is built lazily on first use, from that partner's connection alone, and kept for
its configuration version: a saved change (which raises the version) builds a new one on its
next use and drops the old. Clients are never shared between partners; each stores its flow
state in the visitor's session under a name carrying the partner and the version, so a flow
started before a change cannot finish after it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.integrations.flask_client import FlaskIntegration
from authlib.integrations.flask_client.apps import FlaskOAuth2App
from flask import Flask, current_app
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.sso.crypto import secret_box
from portal.sso.http import (
    AddressRefused,
    ProviderSession,
    ProviderUnavailable,
    check_address,
    start_budget,
)
from portal.sso.models import SsoConnection
from portal.text import counted

WELL_KNOWN = "/.well-known/openid-configuration"
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
METADATA_TTL = 600  # seconds a client trusts the discovery document it read
# At most one fetch of the key set a minute forced by a token naming a key id the cached set
# lacks: anyone may post a logout token, and must not make the portal hammer the provider.
KEYS_REFETCH_INTERVAL = timedelta(seconds=60)
FLOW_LIFETIME = 600  # seconds between leaving for the provider and coming back


def discovery_document_url(address: str) -> str:
    """The discovery document's address, from an issuer or the document's own address."""
    address = address.strip()
    return address if address.endswith(WELL_KNOWN) else address.rstrip("/") + WELL_KNOWN


def expected_issuer(address: str) -> str:
    """The issuer a discovery document at `address` must name (OpenID Connect Discovery §4.3)."""
    url = discovery_document_url(address)
    return url[: -len(WELL_KNOWN)]


class PartnerOIDCClient(FlaskOAuth2App):
    """Authlib's Flask client, with every call bounded (ProviderSession), discovery re-read
    after METADATA_TTL, and the token endpoint authenticated the way the provider supports."""

    client_cls = ProviderSession

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys_forced_at: datetime | None = None
        self._keys_lock = threading.Lock()

    def fetch_jwk_set(self, force: bool = False) -> dict[str, Any]:
        """The provider's key set, cached with the discovery document; a forced fetch (an
        unknown key id) at most once per KEYS_REFETCH_INTERVAL, else the cached set."""
        if force:
            with self._keys_lock:
                now = utcnow()
                recent = self._keys_forced_at is not None and (
                    now - self._keys_forced_at < KEYS_REFETCH_INTERVAL
                )
                cached = self.server_metadata.get("jwks")
                if recent and cached:
                    return cached
                self._keys_forced_at = now
        return super().fetch_jwk_set(force=force)

    def load_server_metadata(self) -> dict[str, Any]:
        loaded = self.server_metadata.get("_loaded_at")
        if loaded is not None and time.time() - loaded > METADATA_TTL:
            self.server_metadata = {}
        try:
            return super().load_server_metadata()
        except ValueError as exc:  # not JSON
            raise ProviderUnavailable(
                "The identity provider's discovery document is not JSON."
            ) from exc

    def _get_oauth_client(self, **metadata: Any) -> Any:
        supported = metadata.get("token_endpoint_auth_methods_supported") or []
        method = (
            "client_secret_post"
            if supported and "client_secret_basic" not in supported
            else "client_secret_basic"
        )
        metadata = {**metadata, "token_endpoint_auth_method": method}
        return super()._get_oauth_client(**metadata)


def build_client(connection: SsoConnection) -> PartnerOIDCClient:
    name = f"sso-{connection.partner_id}-v{connection.version}"
    framework = FlaskIntegration(name)
    framework.expires_in = FLOW_LIFETIME
    secret = secret_box().decrypt(
        connection.client_secret_key_id, connection.client_secret_encrypted
    )
    return PartnerOIDCClient(
        framework,
        name=name,
        client_id=connection.client_id,
        client_secret=secret,
        server_metadata_url=discovery_document_url(connection.discovery_url),
        client_kwargs={"scope": connection.scopes, "code_challenge_method": "S256"},
    )


class ClientCache:
    """The clients of one app instance: one per partner, for its current version."""

    def __init__(self) -> None:
        self._clients: dict[int, tuple[tuple, PartnerOIDCClient]] = {}
        self._lock = threading.Lock()

    def get(self, connection: SsoConnection) -> PartnerOIDCClient:
        # The version, and what identifies this saving beyond it (each saving of a secret
        # makes a new ciphertext): a row recreated with a reused id never meets an old client.
        key = (
            connection.id,
            connection.version,
            connection.discovery_url,
            connection.client_id,
            connection.client_secret_encrypted,
        )
        with self._lock:
            found = self._clients.get(connection.partner_id)
            if found is not None and found[0] == key:
                return found[1]
            client = build_client(connection)
            self._clients[connection.partner_id] = (key, client)
            return client

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()


def client_for(connection: SsoConnection) -> PartnerOIDCClient:
    return current_app.extensions["portal_sso_clients"].get(connection)


def init_app(app: Flask) -> None:
    app.extensions["portal_sso_clients"] = ClientCache()


@dataclass(frozen=True)
class Probe:
    """What a connection test found: the issuer when all is well, else the problem."""

    issuer: str | None
    problem: str | None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None


def _fetch_json(session: ProviderSession, url: str, what: str) -> dict[str, Any]:
    response = session.request("GET", url, withhold_token=True)
    if response.status_code != 200:
        raise ProviderUnavailable(
            f"The {what} at {url[:200]} answered HTTP {response.status_code}."
        )
    try:
        document = response.json()
    except ValueError as exc:
        raise ProviderUnavailable(f"The {what} at {url[:200]} is not JSON.") from exc
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"The {what} at {url[:200]} is not a JSON object.")
    return document


def _check_discovery(document: dict[str, Any], address: str) -> list[str]:
    """Refusals (as PortalError) for a discovery document the portal cannot work with; notes."""
    notes = []
    issuer, wanted = document.get("issuer"), expected_issuer(address)
    if issuer != wanted:
        raise ProviderUnavailable(
            f"The provider names its issuer {str(issuer)[:200]!r}, but the address entered "
            f"points at {wanted!r}. Enter the provider's issuer exactly as it names itself."
        )
    missing = [k for k in ENDPOINTS if not document.get(k)]
    if missing:
        raise ProviderUnavailable(f"The discovery document does not name {', '.join(missing)}.")
    if "code" not in (document.get("response_types_supported") or ["code"]):
        raise ProviderUnavailable("The provider does not offer the authorization code flow.")
    methods = document.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise ProviderUnavailable("The provider does not support PKCE with S256.")
    if methods is None:
        notes.append("The provider does not say whether it supports PKCE; the portal sends it.")
    for key in ENDPOINTS:
        check_address(str(document[key]))
    return notes


def probe_provider(address: str) -> Probe:
    """Fetch the discovery document and the signing keys, and say in plain words what is
    wrong. The client id and secret can only be checked by signing in."""
    start_budget()
    session = ProviderSession()
    try:
        document = _fetch_json(session, discovery_document_url(address), "discovery document")
        notes = _check_discovery(document, address)
        keys = _fetch_json(session, str(document["jwks_uri"]), "key set (jwks_uri)")
        try:
            key_set = KeySet.import_key_set(keys)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProviderUnavailable("The provider's key set (jwks_uri) is not valid.") from exc
        signing = [k for k in key_set.keys if k.get("use") in (None, "sig")]
        if not signing:
            raise ProviderUnavailable("The provider's key set holds no signing key.")
    except AddressRefused:
        raise  # the address itself is wrong: a field error, not a provider problem
    except PortalError as exc:
        return Probe(None, exc.message)
    issuer = str(document["issuer"])
    return Probe(
        issuer,
        None,
        (
            f"Discovery answered for {issuer}.",
            f"{counted(len(signing), 'signing key')} found.",
            *notes,
        ),
    )
