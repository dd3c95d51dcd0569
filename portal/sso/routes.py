"""Signing in through the partner's identity provider, and the user's linked sign-ins.

`/sso/start` and `/sso/callback` live on the partner's own host: the provider sends people
back to the host they left from, and the flow's state lives in that host's session cookie.
`/sso/backchannel-logout` is where the provider's server posts its logout tokens, on the
same host: a token is checked against that partner's provider only.
"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.cookies import set_auth_cookie
from portal.auth.guards import public
from portal.auth.pages import client_info
from portal.auth.throttle import throttle
from portal.exceptions import Conflict, PortalError
from portal.extensions import csrf
from portal.redirects import local_path
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.sso import flow
from portal.sso.crypto import SecretUnreadable
from portal.sso.http import ProviderUnavailable, start_budget
from portal.sso.models import SsoIdentity
from portal.sso.services import (
    LogoutRefused,
    SsoError,
    accept_logout_token,
    current_connection,
    link_identity,
    refuse_sign_in,
    sign_in_connection,
    sign_in_with_oidc,
    unlink_identity,
    ways_to_sign_in,
)
from portal.support.guards import owner_only
from portal.tenancy.context import get_or_404
from portal.unit_of_work import attempt
from portal.web import perform

log = logging.getLogger("portal.sso")

bp = Blueprint("sso", __name__, subdomain="<partner>", url_prefix="/sso")
# Changes to a user's sign-in methods: one blueprint, so that one guard (for example "not
# while impersonating") covers every one of them.
identities_bp = Blueprint(
    "identities", __name__, subdomain="<partner>", url_prefix="/account/identities"
)

FLOW_KEY = "sso_flow"  # what to do when the provider sends the visitor back


def _scope() -> str:
    return str(g.partner.id)


def _error_page(error: PortalError) -> tuple[str, int]:
    return render_template("sso/error.html", error=error), error.status


def _leave_for_provider(purpose: dict[str, object]) -> Response | tuple[str, int]:
    connection = sign_in_connection()
    if connection is None:
        abort(404)
    start_budget()
    try:
        throttle().check_client(_scope(), request.remote_addr)
        response = flow.begin(connection, url_for("sso.callback", _external=True))
    except PortalError as exc:  # provider unavailable, throttled, unreadable secret
        if isinstance(exc, SecretUnreadable):
            log.error("single sign-on: the stored client secret cannot be decrypted")
        return _error_page(exc)
    session[FLOW_KEY] = purpose
    return response


@bp.post("/start")
@public
def start() -> Response | tuple[str, int]:
    """Leave for the provider to sign in (a form on the sign-in page, with its CSRF token)."""
    next_path = local_path(request.form.get("next", ""), url_for("home.index"))
    return _leave_for_provider({"next": next_path})


@bp.get("/callback")
@public
def callback() -> Response | tuple[str, int]:
    """The provider's answer: verify it, then sign in (or link, when that was the errand)."""
    connection = sign_in_connection()
    if connection is None:
        abort(404)
    start_budget()
    purpose = session.pop(FLOW_KEY, None) or {}
    client = client_info()
    try:
        throttle().check_client(_scope(), client.ip)
        claims = flow.finish(connection)
        if "link_user" in purpose:
            user = current_user._get_current_object()
            if getattr(user, "id", None) != purpose["link_user"]:
                abort(403)
            message = link_identity(connection, user, claims)
            flash(message, "info")
            return redirect(url_for("identities.index"))
        result = sign_in_with_oidc(connection, claims, client)
    except SsoError as exc:
        if exc.counts_as_failure:
            throttle().client_failed(_scope(), client.ip)
        if not exc.audited:
            refuse_sign_in(exc)
        return _error_page(exc)
    except PortalError as exc:  # provider unavailable, throttled, session limit, secret
        if isinstance(exc, SecretUnreadable):
            log.error("single sign-on: the stored client secret cannot be decrypted")
        return _error_page(exc)
    session.clear()  # a fresh CSRF secret for the new sign-in, nothing carried over
    response = redirect(local_path(str(purpose.get("next", "")), url_for("home.index")))
    set_auth_cookie(response, result.token, expires=result.remember_until)
    return response


@bp.post("/backchannel-logout")
@public
@csrf.exempt  # the provider's server posts here; it carries no cookie, its token is signed
def backchannel_logout() -> Response | tuple[Response, int]:
    """OpenID Connect Back-Channel Logout: 200 once the sessions the token names are signed
    out (also when there were none), 400 with an OAuth error for a token that is refused."""
    connection = current_connection()
    if connection is None or connection.issuer is None:
        abort(404)  # no provider (or none that passed a test) to verify a token against
    start_budget()
    try:
        claims = flow.verify_logout_token(connection, request.form.get("logout_token", ""))
        with attempt("This logout token was delivered twice at once; the other copy acted."):
            accept_logout_token(claims, remember_for=flow.logout_token_memory())
    except LogoutRefused as exc:
        log.info("back-channel logout refused: %s", exc.message)
        return _oauth_error(exc.error, exc.message, exc.status)
    except ProviderUnavailable as exc:
        return _oauth_error("temporarily_unavailable", exc.message, 503)
    except Conflict as exc:  # another delivery of this token took its jti first
        return _oauth_error("invalid_request", exc.message, 400)
    except PortalError as exc:  # the stored client secret cannot be decrypted
        if isinstance(exc, SecretUnreadable):
            log.error("single sign-on: the stored client secret cannot be decrypted")
        return _oauth_error("temporarily_unavailable", exc.message, 503)
    return Response(status=200)


def _oauth_error(error: str, description: str, status: int) -> tuple[Response, int]:
    return jsonify(error=error, error_description=description), status


@identities_bp.get("/")
@requires(Permission.PROFILE_EDIT)
@owner_only("manage the ways to sign in")
def index() -> str:
    user = current_user._get_current_object()
    identities, connection = ways_to_sign_in(user)
    return render_template(
        "sso/identities.html",
        identities=identities,
        connection=connection,
        has_password=user.password_hash is not None,
    )


@identities_bp.post("/link")
@requires(Permission.PROFILE_EDIT)
@owner_only("manage the ways to sign in")
def link() -> Response | tuple[str, int]:
    """Leave for the provider to link its account to the signed-in user."""
    return _leave_for_provider({"link_user": current_user.id, "next": url_for(".index")})


@identities_bp.post("/<int:id>/unlink")
@requires(Permission.PROFILE_EDIT)
@owner_only("manage the ways to sign in")
def unlink(id: int) -> Response:
    identity = get_or_404(SsoIdentity, id)
    user = current_user._get_current_object()
    if identity.user_id != user.id:
        abort(404)
    return perform(lambda: unlink_identity(user, identity), back=url_for(".index"))
