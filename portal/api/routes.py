"""/api/v1 on a partner host: the same services, rules and audit events as the admin pages.

Each view says its scope and the permission its client's admin needs (`@bearer`), loads every
id through the partner-scoped loader (another partner's id is a 404 like a missing one) and
calls the service the web page calls. Each endpoint's OpenAPI description sits beside it
(`@documented`), and `/api/v1/openapi.json` is built from the routes themselves.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.api import schema
from portal.api.http import (
    acting,
    bearer,
    body,
    check_if_match,
    cursor,
    flag,
    limit,
    page,
    text_field,
    with_etag,
)
from portal.api.models import Scope
from portal.api.problems import ApiRefusal, refusal_response
from portal.api.schema import documented
from portal.audit.models import AuditEvent
from portal.exceptions import NotFound
from portal.extensions import csrf, db
from portal.features.evaluation import evaluate
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy
from portal.sessions.models import UserSession
from portal.sessions.services import live_sessions_of, revoke_user_session
from portal.subscriptions.models import Plan, Subscription, SubscriptionEvent, SubscriptionState
from portal.subscriptions.services import ADMIN_ACTIONS, ActorKind, admin_move, start_signing
from portal.support.services import end_for_session
from portal.tenancy.context import get_or_404, parse_id
from portal.unit_of_work import attempt, lock_partner
from portal.users import services as users
from portal.users.models import User
from portal.users.queries import UserQuery, users_after

bp = Blueprint("api", __name__, subdomain="<partner>", url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens, never cookies: nothing a browser sends on its own counts

P = Permission


def _role(value: Any) -> Role:
    if not isinstance(value, str) or value not in Role._value2member_map_:
        raise ApiRefusal(f"'role' must be one of {', '.join(r.value for r in Role)}.", status=422)
    return Role(value)


def _id_field(data: dict[str, Any], name: str) -> int:
    """An id sent in the body: a whole number (one that names no row of this partner is then
    a 404, like an id in the path)."""
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiRefusal(f"'{name}' must be an id (a whole number).", status=422)
    return value


def _user_answer(user: User, status: int = 200) -> Response:
    response = jsonify(schema.user(user))
    response.status_code = status
    return with_etag(response, user.version)


def _locked_user(user_id: int) -> User:
    """The user, read after taking the partner's write lock, so If-Match compares with the
    version no other writer can change before this one commits."""
    lock_partner()
    user = get_or_404(User, user_id)
    db.session.refresh(user)
    check_if_match(user.version, f"User {user.id}")
    return user


# --- Users ----------------------------------------------------------------------------------


@bp.get("/users")
@bearer(Scope.USERS_READ, P.USERS_VIEW)
@documented("listUsers", "List users", "UserPage", query=schema.USER_FILTERS, paged=True)
def list_users() -> Response:
    query = UserQuery.from_args(request.args)
    size = limit()
    return page(users_after(query, cursor(), size + 1), size, schema.user)


@bp.get("/users/<int:user_id>")
@bearer(Scope.USERS_READ, P.USERS_VIEW)
@documented("getUser", "Get a user", "User", etag=True)
def get_user(user_id: int) -> Response:
    return _user_answer(get_or_404(User, user_id))


@bp.post("/users")
@bearer(Scope.USERS_WRITE, P.USERS_INVITE)
@documented("inviteUser", "Invite a user", "User", request="Invitation", status=201, etag=True)
def invite_user() -> Response:
    data = body()
    try:
        with attempt():
            user = users.invite_user(
                acting(),
                text_field(data, "email"),
                _role(data.get("role")),
                text_field(data, "display_name", required=False),
            )
    except users.InvitationLimited as exc:
        # Answered here, not by the error handler (which rolls back): the refusal's audit
        # event goes with this request's commit; the step undid what the invitation wrote.
        return refusal_response(exc)
    response = _user_answer(user, 201)
    response.headers["Location"] = url_for("api.get_user", user_id=user.id)
    return response


@bp.post("/users/<int:user_id>/role")
@bearer(Scope.USERS_WRITE, P.USERS_EDIT_ROLE)
@documented("changeRole", "Change a user's role", "User", request="RoleChange", etag=True)
def change_role(user_id: int) -> Response:
    data = body()
    to = _role(data.get("role"))
    confirm = flag(data, "confirm_suspension")
    user = _locked_user(user_id)
    users.change_role(acting(), user, to, confirm_suspension=confirm)
    db.session.flush()
    return _user_answer(user)


@bp.post("/users/<int:user_id>/deactivate")
@bearer(Scope.USERS_WRITE, P.USERS_DEACTIVATE)
@documented("deactivateUser", "Deactivate a user (ends their sessions)", "User", etag=True)
def deactivate_user(user_id: int) -> Response:
    user = _locked_user(user_id)
    users.deactivate_user(acting(), user)
    db.session.flush()
    return _user_answer(user)


@bp.post("/users/<int:user_id>/reactivate")
@bearer(Scope.USERS_WRITE, P.USERS_DEACTIVATE)
@documented("reactivateUser", "Reactivate a user", "User", etag=True)
def reactivate_user(user_id: int) -> Response:
    user = _locked_user(user_id)
    users.reactivate_user(acting(), user)
    db.session.flush()
    return _user_answer(user)


# --- Roles and plans --------------------------------------------------------------------------


@bp.get("/roles")
@bearer(Scope.USERS_READ, P.USERS_VIEW)
@documented("listRoles", "List roles as configured", "RoleList")
def list_roles() -> Response:
    policy = current_policy()
    return jsonify({"data": [schema.role(policy.roles[r]) for r in Role]})


@bp.get("/plans")
@bearer(Scope.SUBSCRIPTIONS_READ, P.SUBSCRIPTIONS_MANAGE_ANY)
@documented("listPlans", "List plans", "PlanList")
def list_plans() -> Response:
    plans = db.session.execute(select(Plan).order_by(Plan.position, Plan.id)).scalars()
    return jsonify({"data": [schema.plan(p) for p in plans]})


# --- Subscriptions --------------------------------------------------------------------------


@bp.get("/subscriptions")
@bearer(Scope.SUBSCRIPTIONS_READ, P.SUBSCRIPTIONS_MANAGE_ANY)
@documented(
    "listSubscriptions", "List subscriptions", "SubscriptionPage",
    query=schema.SUBSCRIPTION_FILTERS, paged=True,
)  # fmt: skip
def list_subscriptions() -> Response:
    size = limit()
    stmt = select(Subscription).order_by(Subscription.id)
    state = request.args.get("state")
    if state is not None:
        if state not in SubscriptionState._value2member_map_:
            raise ApiRefusal("'state' is not a subscription state.", status=400)
        stmt = stmt.where(Subscription.state == SubscriptionState(state))
    for name, column in (("user_id", Subscription.user_id), ("plan_id", Subscription.plan_id)):
        if name in request.args:
            key = parse_id(request.args[name])
            if key is None:
                raise ApiRefusal(f"'{name}' is not an id.", status=400)
            stmt = stmt.where(column == key)
    after = cursor()
    if after is not None:
        stmt = stmt.where(Subscription.id > after)
    items = list(db.session.execute(stmt.limit(size + 1)).scalars())
    return page(items, size, schema.subscription)


@bp.post("/subscriptions")
@bearer(Scope.SUBSCRIPTIONS_WRITE, P.SUBSCRIPTIONS_MANAGE_ANY)
@documented(
    "startSubscription", "Start signing a plan for a user (the user then accepts its terms)",
    "Subscription", request="SubscriptionStart", status=201, etag=True,
)  # fmt: skip
def start_subscription() -> Response:
    """What an admin's "Start signing for this user" does (`subscriptions_admin.start_for_user`):
    the same service and rules, the client as the actor."""
    if not evaluate("subscriptions").on:  # the page's route does not exist then either
        raise NotFound("Subscriptions are switched off for this portal.")
    data = body()
    user_id, plan_id = _id_field(data, "user_id"), _id_field(data, "plan_id")
    user = get_or_404(User, user_id)
    plan = get_or_404(Plan, plan_id)
    sub = start_signing(
        user, plan, actor=acting(), kind=ActorKind.ADMIN, reason="started through the partner API"
    )
    response = jsonify(schema.subscription(sub))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_subscription", sub_id=sub.id)
    return with_etag(response, sub.version)


@bp.get("/subscriptions/<int:sub_id>")
@bearer(Scope.SUBSCRIPTIONS_READ, P.SUBSCRIPTIONS_MANAGE_ANY)
@documented("getSubscription", "Get a subscription", "Subscription", etag=True)
def get_subscription(sub_id: int) -> Response:
    sub = get_or_404(Subscription, sub_id)
    return with_etag(jsonify(schema.subscription(sub)), sub.version)


@bp.get("/subscriptions/<int:sub_id>/history")
@bearer(Scope.SUBSCRIPTIONS_READ, P.SUBSCRIPTIONS_MANAGE_ANY)
@documented("subscriptionHistory", "A subscription's transitions, oldest first", "HistoryList")
def subscription_history(sub_id: int) -> Response:
    sub = get_or_404(Subscription, sub_id)
    events = db.session.execute(
        select(SubscriptionEvent)
        .where(SubscriptionEvent.subscription_id == sub.id)
        .order_by(SubscriptionEvent.id)
    ).scalars()
    return jsonify({"data": [schema.history(e) for e in events]})


@bp.post("/subscriptions/<int:sub_id>/transition")
@bearer(Scope.SUBSCRIPTIONS_WRITE, P.SUBSCRIPTIONS_MANAGE_ANY)
@documented(
    "transitionSubscription", "Move a subscription (approve, reject, suspend, resume, end)",
    "Subscription", request="Transition", etag=True,
)  # fmt: skip
def transition_subscription(sub_id: int) -> Response:
    data = body()
    action = data.get("action")
    if not isinstance(action, str) or action not in ADMIN_ACTIONS:
        raise ApiRefusal(f"'action' must be one of {', '.join(ADMIN_ACTIONS)}.", status=422)
    reason = text_field(data, "reason", required=False)
    lock_partner()
    sub = get_or_404(Subscription, sub_id)
    db.session.refresh(sub)
    check_if_match(sub.version, f"Subscription {sub.id}")
    admin_move(sub, action, actor=acting(), reason=reason)
    return with_etag(jsonify(schema.subscription(sub)), sub.version)


# --- Sessions -------------------------------------------------------------------------------


@bp.get("/users/<int:user_id>/sessions")
@bearer(Scope.SESSIONS_READ, P.SESSIONS_REVOKE_ANY)
@documented("listSessions", "A user's live sessions", "SessionList")
def list_sessions(user_id: int) -> Response:
    user = get_or_404(User, user_id)
    return jsonify({"data": [schema.session(s) for s in live_sessions_of(user)]})


@bp.post("/sessions/<int:session_id>/revoke")
@bearer(Scope.SESSIONS_WRITE, P.SESSIONS_REVOKE_ANY)
@documented("revokeSession", "End a session", "Revoked")
def revoke_session(session_id: int) -> Response:
    record = get_or_404(UserSession, session_id)
    if record.impersonator_id is not None:
        ended = end_for_session(record, by=acting())
    else:
        ended = revoke_user_session(record, by=acting(), reason="ended through the partner API")
    return jsonify({"id": record.id, "revoked": True, "already_ended": not ended})


# --- Audit ----------------------------------------------------------------------------------


@bp.get("/audit-events")
@bearer(Scope.AUDIT_READ, P.AUDIT_VIEW)
@documented(
    "listAuditEvents", "The audit log, newest first", "AuditPage",
    query=schema.AUDIT_FILTERS, paged=True,
)  # fmt: skip
def list_audit_events() -> Response:
    size = limit()
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc())
    action = request.args.get("action")
    if action:
        stmt = stmt.where(AuditEvent.action == action[:80])
    after = cursor()
    if after is not None:
        stmt = stmt.where(AuditEvent.id < after)
    items = list(db.session.execute(stmt.limit(size + 1)).scalars())
    return page(items, size, schema.audit_event)
