"""The authorization code flow with the partner's client: leaving for the provider, and
verifying what comes back (state, PKCE, then the ID token's signature, issuer, audience,
expiry and nonce, all checked by Authlib). Every failure becomes an `SsoError` or
`ProviderUnavailable` with words a person can act on; the technical detail goes to the log.

Also the provider's back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0,
§2.6), verified with the same client's keys (fetched and cached as for ID tokens).
"""

from __future__ import annotations

import calendar
import logging
from datetime import timedelta
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from flask import request
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from werkzeug.wrappers import Response

from portal.clock import utcnow
from portal.sso.client import client_for
from portal.sso.http import ProviderUnavailable
from portal.sso.models import SsoConnection
from portal.sso.services import (
    AnswerRejected,
    FlowExpired,
    LogoutClaims,
    LogoutRefused,
    ProviderRefused,
    SignInCancelled,
)

log = logging.getLogger("portal.sso")

LEEWAY = 60  # seconds of clock difference tolerated on the ID token's times


def _unavailable(exc: Exception) -> ProviderUnavailable:
    if isinstance(exc, ProviderUnavailable):
        return exc
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return ProviderUnavailable(
            f"The identity provider answered HTTP {exc.response.status_code}; try again later."
        )
    return ProviderUnavailable("The identity provider's answer could not be read.")


def begin(connection: SsoConnection, redirect_uri: str) -> Response:
    """Send the visitor to the provider, with state, nonce and a PKCE (S256) challenge kept in
    their session."""
    try:
        return client_for(connection).authorize_redirect(redirect_uri)
    except (ProviderUnavailable, requests.RequestException, ValueError) as exc:
        raise _unavailable(exc) from exc


def finish(connection: SsoConnection) -> dict[str, Any]:
    """The verified claims of the ID token the provider's answer leads to."""
    error = request.args.get("error")
    if error:
        if error == "access_denied":
            raise SignInCancelled("You cancelled the sign-in at the identity provider.")
        log.warning("the identity provider refused the sign-in: %s", error[:80])
        raise ProviderRefused(
            f"The identity provider refused the sign-in ({error[:80]}). "
            "Try again, or ask your administrator."
        )
    client = client_for(connection)
    claims_options = {
        "iss": {"essential": True, "value": connection.issuer},
        "aud": {"essential": True, "value": connection.client_id},
        "sub": {"essential": True},
    }
    try:
        token = client.authorize_access_token(claims_options=claims_options, leeway=LEEWAY)
    except MismatchingStateError as exc:
        raise FlowExpired() from exc
    except OAuthError as exc:  # the token endpoint refused the code (used, expired, not ours)
        log.warning("the token endpoint refused the code: %s", exc.error)
        raise ProviderRefused(
            f"The identity provider refused the sign-in code ({str(exc.error)[:80]}): it may "
            "have been used already or have expired. Start again from the sign-in page."
        ) from exc
    except JoseError as exc:  # signature, issuer, audience, expiry, nonce
        log.warning("ID token rejected: %s %s", type(exc).__name__, str(exc)[:120])
        raise AnswerRejected(
            "The identity provider's answer could not be verified "
            f"({_plain(exc)}). Nothing was signed in; start again."
        ) from exc
    except (ProviderUnavailable, requests.RequestException) as exc:
        raise _unavailable(exc) from exc
    except ValueError as exc:  # a malformed token or answer
        log.warning("unreadable answer from the identity provider: %s", type(exc).__name__)
        raise AnswerRejected(
            "The identity provider's answer could not be read. Nothing was signed in."
        ) from exc
    userinfo = token.get("userinfo")
    if not userinfo:
        raise AnswerRejected("The identity provider sent no ID token. Nothing was signed in.")
    return dict(userinfo)


CLAIM_PROBLEMS = {
    "exp": "it has expired",
    "nonce": "it was not issued for this sign-in",
    "aud": "it was issued for another application",
    "azp": "it was issued for another application",
    "iss": "it comes from another issuer",
    "iat": "it claims to be issued in the future",
    "nbf": "it is not valid yet",
}


def _plain(exc: JoseError) -> str:
    """What was wrong with an ID token, in words."""
    if isinstance(exc, BadSignatureError | InvalidKeyIdError):
        return "its signature does not match the provider's keys"
    return CLAIM_PROBLEMS.get(getattr(exc, "claim", ""), "it is not valid")


# --- Back-channel logout ----------------------------------------------------------------------

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_MAX_AGE = 300  # seconds: an older logout token is refused (and its jti forgotten)
MAX_LOGOUT_TOKEN = 16 * 1024  # characters; a logout token is a few hundred


def logout_token_memory() -> timedelta:
    """How long an accepted logout token's jti is kept: while its iat would still pass."""
    return timedelta(seconds=LOGOUT_MAX_AGE + 2 * LEEWAY)


def _timestamp() -> int:
    return calendar.timegm(utcnow().timetuple())


def _provider_keys(client: Any, *, force: bool = False) -> KeySet:
    """The provider's signing keys, as the sign-in flow fetches and caches them."""
    try:
        return KeySet.import_key_set(client.fetch_jwk_set(force=force))
    except (ProviderUnavailable, requests.RequestException) as exc:
        raise _unavailable(exc) from exc
    except (JoseError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ProviderUnavailable("The identity provider's key set could not be read.") from exc


def _decode(client: Any, raw: str) -> jwt.Token:
    """The token's header and claims, its signature checked against the provider's keys (a
    key id the cached set lacks fetches the set again once, as for ID tokens)."""
    try:
        metadata = client.load_server_metadata()
    except (ProviderUnavailable, requests.RequestException) as exc:
        raise _unavailable(exc) from exc
    algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    registry = JWSRegistry(
        algorithms=[a for a in algorithms if a != "none"], strict_check_header=False
    )
    try:
        return jwt.decode(raw, _provider_keys(client), registry=registry)
    except InvalidKeyIdError:
        return jwt.decode(raw, _provider_keys(client, force=True), registry=registry)


def _check_logout_claims(connection: SsoConnection, claims: dict[str, Any]) -> LogoutClaims:
    """The checks of §2.6 beyond the signature; a refusal says which failed."""
    now = _timestamp()
    registry = JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY,
        iss={"essential": True, "value": connection.issuer},
        aud={"essential": True, "value": connection.client_id},
        iat={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        claim = getattr(exc, "claim", "") or "?"
        problem = "missing" if isinstance(exc, MissingClaimError) else "wrong"
        raise LogoutRefused(f"The logout token's {claim} claim is {problem}.") from exc
    if now - claims["iat"] > LOGOUT_MAX_AGE + LEEWAY:
        raise LogoutRefused("The logout token was issued too long ago.")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise LogoutRefused("The logout token does not carry the back-channel logout event.")
    if "nonce" in claims:
        raise LogoutRefused("A logout token must not carry a nonce.")
    sub, sid = claims.get("sub"), claims.get("sid")
    if sid is not None and (not isinstance(sid, str) or not sid or len(sid) > 255):
        raise LogoutRefused("The logout token's sid claim is not a session id.")
    if not sub and not sid:
        raise LogoutRefused("The logout token names neither a subject (sub) nor a session (sid).")
    jti = claims["jti"]
    if len(jti) > 255:
        raise LogoutRefused("The logout token's jti claim is too long.")
    return LogoutClaims(issuer=claims["iss"], jti=jti, subject=sub or None, sid=sid)


def verify_logout_token(connection: SsoConnection, raw: str) -> LogoutClaims:
    """The claims of a logout token from the partner's provider, once every check of the
    specification passed; otherwise `LogoutRefused` (or `ProviderUnavailable`: no keys)."""
    if not raw or len(raw) > MAX_LOGOUT_TOKEN or raw.count(".") != 2:
        raise LogoutRefused("The logout_token is not a signed JWT.")
    client = client_for(connection)
    try:
        token = _decode(client, raw)
    except (BadSignatureError, InvalidKeyIdError) as exc:
        raise LogoutRefused(
            "The logout token's signature does not match the provider's keys."
        ) from exc
    except (JoseError, ValueError, TypeError) as exc:  # not a JWS, an algorithm not allowed
        log.warning("unreadable logout token: %s %s", type(exc).__name__, str(exc)[:120])
        raise LogoutRefused("The logout token could not be read as a signed JWT.") from exc
    return _check_logout_claims(connection, dict(token.claims))
