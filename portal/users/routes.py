"""Admin user management (/admin/users) and accepting invitations (/invite/<token>)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from flask import (
    Blueprint,
    abort,
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
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from portal.account.services import send_password_reset
from portal.auth.guards import public
from portal.auth.passwords import MIN_PASSWORD_LENGTH
from portal.exceptions import PortalError
from portal.features.evaluation import feature_on
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.roles.policy import can, current_policy, requires
from portal.sessions.services import live_sessions_of
from portal.sso.services import identities_of
from portal.subscriptions.services import held_subscription, pending_subscription, plan_offers
from portal.tenancy.context import get_or_404, parse_ids
from portal.text import counted
from portal.tokens.models import TokenPurpose
from portal.tokens.services import TokenInvalid, peek_token
from portal.unit_of_work import attempt, expect_version
from portal.users import services
from portal.users.forms import AcceptInvitationForm, InviteForm, RoleForm, role_choices
from portal.users.models import User, UserStatus
from portal.users.presentation import shown_users
from portal.users.queries import SORTS, UserQuery, search_users
from portal.web import is_htmx, list_page, perform, refused

bp = Blueprint("users_admin", __name__, subdomain="<partner>", url_prefix="/admin/users")
invitations_bp = Blueprint("invitations", __name__, subdomain="<partner>")


def _actor() -> User:
    return current_user._get_current_object()


def _list_context(query: UserQuery) -> dict:
    page = search_users(query)
    policy = current_policy()
    return {
        "page": page,
        "rows": shown_users(page.items, policy),
        "query": query,
        "sorts": SORTS,
        "roles": list(Role),
        "statuses": list(UserStatus),
        "policy": policy,
    }


@bp.get("/")
@requires(Permission.USERS_VIEW)
def index() -> Response:
    context = _list_context(UserQuery.from_args(request.args))
    # htmx asks for the table only (search, filters, sorting, pagination).
    alone = is_htmx() and not request.headers.get("HX-Boosted")
    response = make_response(
        list_page("users/list.html", "users/_table.html", alone=alone, **context)
    )
    response.headers["Vary"] = "HX-Request"
    return response


@bp.get("/<int:user_id>")
@requires(Permission.USERS_VIEW)
def detail(user_id: int) -> str:
    user = get_or_404(User, user_id)
    policy = current_policy()
    form = RoleForm()
    form.role.choices = role_choices(policy.targets_for(_actor(), user), policy.label)
    sessions = live_sessions_of(user) if can(Permission.SESSIONS_REVOKE_ANY) else []
    subscriptions = None
    if can(Permission.SUBSCRIPTIONS_MANAGE_ANY):
        subscriptions = {
            "held": held_subscription(user),
            "pending": pending_subscription(user),
            # A new subscription only while the partner runs subscriptions.
            "offers": [plan for plan, reason in plan_offers(user) if reason is None]
            if feature_on("subscriptions")
            else [],
        }
    return render_template(
        "users/detail.html",
        user=user,
        pending_signup=services.is_pending_signup(user),
        form=form,
        policy=policy,
        sessions=sessions,
        subscriptions=subscriptions,
        identities=identities_of(user),
    )


def _changed_meanwhile(user: User) -> str:
    return (
        f"{user.email} was changed by someone else since you opened this page. "
        "Look at it again and repeat your change if it still makes sense."
    )


def _user_action(user_id: int, action: Callable[[User], str]) -> Response:
    """One admin action on a user of this partner, as they were when the admin looked."""
    user = get_or_404(User, user_id)

    def act() -> str:
        expect_version(user, request.form.get("version"), _changed_meanwhile(user))
        return action(user)

    return perform(act, back=url_for("users_admin.detail", user_id=user_id))


@bp.post("/<int:user_id>/role")
@requires(Permission.USERS_EDIT_ROLE)
def change_role(user_id: int) -> Response:
    user = get_or_404(User, user_id)
    back = url_for("users_admin.detail", user_id=user_id)
    value = request.form.get("role", "")
    if value not in Role._value2member_map_:
        return refused(services.UserError("Choose a role.", status=422), back)
    confirmed = request.form.get("confirm") == "1"
    try:
        with attempt(_changed_meanwhile(user)):
            expect_version(user, request.form.get("version"), _changed_meanwhile(user))
            services.change_role(_actor(), user, Role(value), confirm_suspension=confirmed)
    except services.NeedsConfirmation as exc:
        if is_htmx():
            return refused(exc, back)
        page = render_template(
            "users/confirm_role.html", user=user, role=Role(value), message=str(exc)
        )
        return make_response(page, 409)
    except PortalError as exc:
        return refused(exc, back)
    flash(f"{user.email} now has the role {current_policy().label(user.role)}.", "info")
    return redirect(back)


@bp.post("/<int:user_id>/deactivate")
@requires(Permission.USERS_DEACTIVATE)
def deactivate(user_id: int) -> Response:
    def act(user: User) -> str:
        ended = services.deactivate_user(_actor(), user)
        return f"{user.email} is deactivated; {counted(ended, 'session')} ended."

    return _user_action(user_id, act)


@bp.post("/<int:user_id>/reactivate")
@requires(Permission.USERS_DEACTIVATE)
def reactivate(user_id: int) -> Response:
    def act(user: User) -> str:
        services.reactivate_user(_actor(), user)
        return f"{user.email} is {user.status.value} again."

    return _user_action(user_id, act)


@bp.post("/<int:user_id>/password-reset")
@requires(Permission.USERS_DEACTIVATE)
def password_reset(user_id: int) -> Response:
    def act(user: User) -> str:
        send_password_reset(user, by=_actor())
        return f"A password reset link was sent to {user.email}. It works once, for an hour."

    return _user_action(user_id, act)


@bp.post("/<int:user_id>/support")
@requires(Permission.USERS_SUPPORT)
def support(user_id: int) -> Response:
    enabled = request.form.get("enabled") == "1"

    def act(user: User) -> str:
        services.set_support(_actor(), user, enabled)
        verb = "is now a support agent" if enabled else "is no longer a support agent"
        return f"{user.email} {verb}."

    return _user_action(user_id, act)


@bp.post("/<int:user_id>/invitation/resend")
@requires(Permission.USERS_INVITE)
def resend_invitation(user_id: int) -> Response:
    def act(user: User) -> str:
        signup = services.is_pending_signup(user)
        services.resend_invitation(_actor(), user)
        if signup:
            return f"An invitation was sent to {user.email}."
        return f"A new invitation link was sent to {user.email}; the old one no longer works."

    return _user_action(user_id, act)


@bp.post("/<int:user_id>/invitation/revoke")
@requires(Permission.USERS_INVITE)
def revoke_invitation(user_id: int) -> Response:
    user = get_or_404(User, user_id)
    email, signup = user.email, services.is_pending_signup(user)
    try:
        with attempt(_changed_meanwhile(user)):
            expect_version(user, request.form.get("version"), _changed_meanwhile(user))
            services.revoke_invitation(_actor(), user)
    except PortalError as exc:
        return refused(exc, url_for("users_admin.detail", user_id=user_id))
    if signup:
        flash(f"The pending sign-up of {email} is removed.", "info")
    else:
        flash(f"The invitation of {email} is revoked.", "info")
    return redirect(url_for("users_admin.index"))


@bp.route("/invite", methods=["GET", "POST"])
@requires(Permission.USERS_INVITE)
def invite() -> tuple[str, int] | Response:
    policy = current_policy()
    form = InviteForm()
    allowed = [r for r in policy.enabled_roles() if r.rank <= _actor().role.rank]
    form.role.choices = role_choices(allowed, policy.label)
    if request.method == "GET":
        form.role.data = Role(g.partner.default_role).value
    if form.validate_on_submit():
        try:
            with attempt(f"{form.email.data} was just invited by someone else."):
                user = services.invite_user(
                    _actor(), form.email.data, Role(form.role.data), form.display_name.data or ""
                )
        except PortalError as exc:
            field = form.display_name if isinstance(exc, services.InvalidName) else form.email
            field.errors.append(str(exc))
            status = exc.status
        else:
            flash(f"Invitation sent to {user.email}.", "info")
            return redirect(url_for("users_admin.detail", user_id=user.id))
    else:
        status = 422 if form.errors else 200
    return render_template("users/invite.html", form=form), status


BULK_ACTIONS = {
    "deactivate": Permission.USERS_DEACTIVATE,
    "reactivate": Permission.USERS_DEACTIVATE,
    "role": Permission.USERS_EDIT_ROLE,
}


@bp.post("/bulk")
@requires(Permission.USERS_VIEW)
def bulk() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    action = request.form.get("action", "")
    if action not in BULK_ACTIONS:
        return _bulk_refused("Choose an action.")
    if not can(BULK_ACTIONS[action]):
        abort(403, "You do not have permission to do this.")
    ids = parse_ids(request.form.getlist("user_ids"))
    if not ids:
        return _bulk_refused("Select at least one user.")
    actor = _actor()
    if action == "role":
        value = request.form.get("role", "")
        if value not in Role._value2member_map_:
            return _bulk_refused("Choose a role.")

        def apply(user: User) -> str:
            services.change_role(actor, user, Role(value))
            return f"Role set to {current_policy().label(user.role)}."
    elif action == "deactivate":

        def apply(user: User) -> str:
            ended = services.deactivate_user(actor, user)
            return f"Deactivated; {counted(ended, 'session')} ended."
    else:

        def apply(user: User) -> str:
            services.reactivate_user(actor, user)
            return f"Now {user.status.value}."

    with attempt():
        results = services.bulk_apply(actor, ids, apply)
    # The list drawn again as the admin was looking at it (htmx names its address; without
    # script, the first page): rows as stored now, nothing ticked, the results above them.
    shown = urlsplit(request.headers.get("HX-Current-URL", "")).query
    context = _list_context(UserQuery.from_args(MultiDict(parse_qsl(shown))))
    page = list_page(
        "users/list.html", "users/_table.html", alone=is_htmx(), results=results, **context
    )
    return page, 200


def _bulk_refused(message: str) -> tuple[str, int, dict[str, str]]:
    """A bulk request that cannot start: the message beside the bar, the ticks kept."""
    page = render_template("users/_bulk_results.html", error=message)
    return page, 422, {"HX-Retarget": "#bulk-results", "HX-Reswap": "innerHTML"}


@invitations_bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def accept(token: str) -> tuple[str, int] | Response:
    try:
        invitation = peek_token(token, TokenPurpose.INVITE)
    except TokenInvalid:
        return render_template("users/invitation_invalid.html"), 404
    form = AcceptInvitationForm()
    if request.method == "GET" and invitation.user.display_name:
        form.display_name.data = invitation.user.display_name
    if form.validate_on_submit():
        try:
            with attempt():
                user = services.accept_invitation(token, form.display_name.data, form.password.data)
        except TokenInvalid:
            return render_template("users/invitation_invalid.html"), 404
        except PortalError as exc:
            field = form.display_name if isinstance(exc, services.InvalidName) else form.password
            field.errors.append(str(exc))
        else:
            flash(f"Welcome, {user.label}! Your account is ready. Sign in to continue.", "info")
            session["sign_in_as"] = user.email
            return redirect(url_for("auth.login"))
    status = 422 if form.errors else 200
    return render_template(
        "users/accept.html",
        form=form,
        invitation=invitation,
        min_password_length=MIN_PASSWORD_LENGTH,
    ), status
