"""The authorization code flow with the partner's client: leaving for the provider, and
verifying what comes back (state, PKCE, then the ID token's signature, issuer, audience,
expiry and nonce, all checked by Authlib). Every failure becomes an `SsoError` or
`ProviderUnavailable` with words a person can act on; the technical detail goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from flask import request
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from werkzeug.wrappers import Response

from portal.sso.client import client_for
from portal.sso.http import ProviderUnavailable
from portal.sso.models import SsoConnection
from portal.sso.services import AnswerRejected, FlowExpired, ProviderRefused, SignInCancelled

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
