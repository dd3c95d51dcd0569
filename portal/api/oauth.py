"""Authlib's authorization server (client credentials) and resource protector, per partner.

Both look clients and tokens up through the ORM, which sees only the partner of the host:
a client id or token of another partner is as unknown as a made-up one.
"""

from __future__ import annotations

import os
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import InvalidScopeError, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Flask, current_app

from portal.api import services
from portal.api.models import ApiClient, ApiToken, Scope


class ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_requested_scope(self) -> None:
        """A scope the client does not hold is refused, not silently left out."""
        super().validate_requested_scope()
        asked = (self.request.payload.scope or "").split()
        if any(scope not in self.request.client.scopes for scope in asked):
            raise InvalidScopeError("This client does not hold every scope asked for.")


class TokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> ApiToken | None:
        return services.token_by_value(token_string)


def _query_client(client_id: str) -> ApiClient | None:
    return services.client_by_client_id(client_id)


def _save_token(token: dict[str, Any], request: Any) -> None:
    services.save_token(
        request.client, token["access_token"], token.get("scope", ""), token["expires_in"]
    )


require_oauth = ResourceProtector()
require_oauth.register_token_validator(TokenValidator(realm="partner-api"))


def authorization_server() -> AuthorizationServer:
    return current_app.extensions["portal_oauth"]


def init_app(app: Flask) -> None:
    if app.config["PORTAL_ENV"] in ("development", "testing"):
        # Authlib's documented switch for plain http (http://acme.localhost:5000); in
        # production the token endpoint answers only over https (behind a proxy, with
        # PORTAL_PROXY_FIX so that the app sees the https the client used).
        os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", [s.value for s in Scope])
    app.config.setdefault(
        "OAUTH2_TOKEN_EXPIRES_IN", {"client_credentials": int(app.config["API_TOKEN_LIFETIME"])}
    )
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(ClientCredentials)
    app.extensions["portal_oauth"] = server
