"""/admin/api-clients (partner admins manage API clients), POST /oauth/token (Authlib's
authorization server), /developers and /api/v1/openapi.json (the API described)."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.api import schema, services
from portal.api.models import SCOPE_DESCRIPTIONS, ApiClient, Scope
from portal.api.oauth import authorization_server
from portal.auth.guards import public
from portal.auth.throttle import LoginThrottled, throttle
from portal.demo.seed import DEMO_API_CLIENT_ID, DEMO_API_SECRET
from portal.exceptions import NotFound, PortalError
from portal.extensions import csrf
from portal.features.evaluation import evaluate, feature
from portal.roles.policy import requires
from portal.tenancy.context import get_or_404
from portal.unit_of_work import attempt
from portal.web import perform

bp = Blueprint(
    "api_clients_admin", __name__, subdomain="<partner>", url_prefix="/admin/api-clients"
)
oauth_bp = Blueprint("oauth", __name__, subdomain="<partner>")
csrf.exempt(oauth_bp)  # client credentials in the request itself, never a cookie


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    return render_template(
        "api/clients.html",
        clients=services.clients(),
        scopes=SCOPE_DESCRIPTIONS,
        **context,
    ), status


@bp.get("/")
@requires(services.MANAGE)
@feature("api_access")
def index() -> tuple[str, int]:
    return _page()


@bp.post("/")
@requires(services.MANAGE)
@feature("api_access")
def create() -> tuple[str, int]:
    name = request.form.get("name", "")
    chosen = request.form.getlist("scopes")
    try:
        with attempt():
            client, secret = services.create_client(current_user, name, chosen)
    except PortalError as exc:
        return _page(exc.status, error=exc.message, name=name, chosen=chosen)
    return _page(201, shown=client, secret=secret)


@bp.post("/<int:client_id>/rotate")
@requires(services.MANAGE)
@feature("api_access")
def rotate(client_id: int) -> tuple[str, int] | Response:
    client = get_or_404(ApiClient, client_id)
    try:
        with attempt():
            secret = services.rotate_secret(current_user, client)
    except PortalError as exc:
        return _page(exc.status, error=exc.message)
    return _page(200, shown=client, secret=secret, rotated=True)


@bp.post("/<int:client_id>/revoke")
@requires(services.MANAGE)
@feature("api_access")
def revoke(client_id: int) -> Response:
    client = get_or_404(ApiClient, client_id)

    def act() -> str:
        services.revoke_client(current_user, client)
        return f"API client {client.name} revoked: its secret and tokens no longer work."

    return perform(act, back=url_for("api_clients_admin.index"))


@oauth_bp.post("/oauth/token")
@public
def token() -> Response:
    """Client credentials in, a bearer token of this partner out (RFC 6749 §4.4)."""
    if not evaluate("api_access").on:
        raise NotFound("The partner API is not switched on for this portal.")
    # Wrong client credentials count like failed sign-ins from this address on this host.
    scope, ip = str(g.partner.id), request.remote_addr
    try:
        throttle().check_client(scope, ip)
    except LoginThrottled:
        refused = jsonify(
            error="slow_down",
            error_description="Too many failed attempts from this address; try again later.",
        )
        refused.status_code = 429
        refused.headers["Retry-After"] = str(throttle().limits.login_per_ip.get_expiry())
        refused.headers["Cache-Control"] = "no-store"
        return refused
    response = authorization_server().create_token_response()
    if response.status_code == 401:
        throttle().client_failed(scope, ip)
    return response


@oauth_bp.get("/developers")
@public
def developers() -> str:
    return render_template(
        "api/developers.html",
        base=request.host_url.rstrip("/"),
        api_on=evaluate("api_access").on,
        scopes=SCOPE_DESCRIPTIONS,
        lifetime=int(current_app.config["API_TOKEN_LIFETIME"]),
        scope_names=[s.value for s in Scope],
        demo=_demo_client(),
    )


def _demo_client() -> tuple[str, str] | None:
    """The seeded demo client's credentials, printed on this page in development only."""
    if current_app.config["PORTAL_ENV"] != "development":
        return None
    client = services.client_by_client_id(DEMO_API_CLIENT_ID)
    if client is None or not client.check_client_secret(DEMO_API_SECRET):
        return None
    return DEMO_API_CLIENT_ID, DEMO_API_SECRET


@oauth_bp.get("/api/v1/openapi.json")
@public
def openapi() -> Response:
    return jsonify(schema.build(current_app))
