"""/support: support agents look users up, read a summary, act as one, and stop."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.cookies import read_token, set_auth_cookie, set_return_cookie
from portal.auth.loader import return_to_own_session
from portal.auth.pages import client_info
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.features.evaluation import feature
from portal.roles.models import Role
from portal.roles.policy import current_policy
from portal.support import services
from portal.support.forms import StartForm
from portal.support.guards import support_agents_only
from portal.support.queries import user_summary
from portal.tenancy.context import get_or_404
from portal.unit_of_work import attempt
from portal.users.models import User, UserStatus
from portal.users.queries import SUBSCRIPTION_FILTERS, UserQuery, search_users
from portal.web import is_htmx, list_page

bp = Blueprint("support", __name__, subdomain="<partner>", url_prefix="/support")


def _me() -> User:
    return current_user._get_current_object()


@bp.get("/")
@feature("impersonation")
@support_agents_only
def index() -> Response:
    """The lookup: search by email or name, filter by status, role and subscription."""
    services.close_lapsed()
    query = UserQuery.from_args(request.args)
    page = search_users(query, with_subscription=True)
    context = {
        "page": page,
        "query": query,
        "roles": list(Role),
        "statuses": list(UserStatus),
        "subscription_filters": SUBSCRIPTION_FILTERS,
        "subscriptions": page.subscriptions,
        "policy": current_policy(),
    }
    response = make_response(
        list_page("support/index.html", "support/_table.html", alone=is_htmx(), **context)
    )
    response.headers["Vary"] = "HX-Request"
    return response


def _summary_page(target: User, form: StartForm, error: str | None = None) -> str:
    return render_template(
        "support/user.html",
        summary=user_summary(target),
        form=form,
        error=error,
        problem=services.target_problem(_me(), target),
        policy=current_policy(),
        limits=g.partner.session_policy,
        now=utcnow(),
    )


@bp.get("/users/<int:user_id>")
@feature("impersonation")
@support_agents_only
def user(user_id: int) -> str:
    """A read-only summary of one user, and the form to act as them."""
    return _summary_page(get_or_404(User, user_id), StartForm(formdata=None))


@bp.post("/users/<int:user_id>/impersonate")
@feature("impersonation")
@support_agents_only
def start(user_id: int) -> tuple[str, int] | Response:
    """Act as the user: this browser switches to a support session in their name."""
    target = get_or_404(User, user_id)
    form = StartForm()
    if not form.validate_on_submit():
        return _summary_page(target, form), 422
    own = g.user_session
    try:
        with attempt():
            imp, token = services.start_impersonation(
                _me(),
                target,
                reason=form.reason.data or "",
                ticket=form.ticket.data,
                agent_session=own,
                client=client_info(),
            )
    except PortalError as exc:
        return _summary_page(target, form, error=exc.message), exc.status
    own_token, own_expiry = read_token(), own.expires_at if own.remember else None
    email, ends = target.email, imp.expires_at
    session.clear()  # a fresh CSRF secret for the new identity, nothing carried over
    flash(
        f"You are now acting as {email}. Everything you do is recorded with your name and "
        f"reason. The support session ends at {ends:%H:%M} UTC at the latest.",
        "info",
    )
    response = redirect(url_for("home.index"))
    set_auth_cookie(response, token)
    if own_token is not None:
        set_return_cookie(response, own_token, expires=own_expiry)
    return response


@bp.post("/stop")
def stop() -> Response:
    """Stop acting as the user: back to the agent's own account, on their own session."""
    acting = g.get("impersonation")
    if acting is None:
        flash("You are not acting as anyone; there is nothing to stop.", "info")
        return redirect(url_for("home.index"))
    imp = services.stop_impersonation(acting)
    g.pop("impersonation")
    session.clear()
    if return_to_own_session(g.partner, imp) is None:
        flash(
            f"The support session as {acting.target_email} has ended. Your own session had "
            "ended too: sign in again.",
            "info",
        )
        return redirect(url_for("auth.login"))
    flash(
        f"You are back in your own account. The support session as {acting.target_email} "
        "has ended.",
        "info",
    )
    return redirect(url_for("support.user", user_id=acting.target_id))
