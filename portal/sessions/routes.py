"""Session lists: a user's own devices (/account/sessions) and the admin view (/admin/sessions)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import contains_eager, joinedload
from werkzeug.wrappers import Response

from portal.clock import utcnow
from portal.extensions import db
from portal.features.evaluation import feature
from portal.redirects import local_path
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.sessions.devices import device_label
from portal.sessions.models import UserSession
from portal.sessions.services import (
    live_sessions_of,
    live_sessions_query,
    revoke_partner_sessions,
    revoke_user_session,
    revoke_user_sessions,
)
from portal.support.guards import owner_only
from portal.support.services import end_for_session
from portal.tenancy.context import current_partner, get_or_404
from portal.text import counted
from portal.users.models import User
from portal.users.search import contains_pattern
from portal.web import is_htmx

bp = Blueprint("sessions", __name__, subdomain="<partner>", url_prefix="/account/sessions")
admin_bp = Blueprint(
    "sessions_admin", __name__, subdomain="<partner>", url_prefix="/admin/sessions"
)


def _me() -> User:
    return current_user._get_current_object()


def _reason(default: str) -> str:
    text = " ".join(request.form.get("reason", "").split())[:150]
    return f"{default}: {text}" if text else default


# --- The user's own sessions ---------------------------------------------------------------


def _own_list() -> str:
    return render_template(
        "sessions/_own_list.html", sessions=live_sessions_of(_me()), current=g.user_session
    )


@bp.get("/")
@feature("session_self_service")
@requires(Permission.PORTAL_VIEW)
@owner_only("manage sessions")
def index() -> str:
    return render_template(
        "sessions/own.html", sessions=live_sessions_of(_me()), current=g.user_session
    )


def _own_live_session(session_id: int) -> UserSession:
    """One of the user's own live sessions; anyone else's is as missing as a missing one."""
    record = get_or_404(UserSession, session_id)
    if record.user_id != _me().id or record.impersonator_id is not None:
        abort(404)
    return record


@bp.post("/<int:session_id>/revoke")
@feature("session_self_service")
@requires(Permission.PORTAL_VIEW)
@owner_only("manage sessions")
def revoke(session_id: int) -> Response | str:
    record = _own_live_session(session_id)
    current = record.id == g.user_session.id
    revoke_user_session(record, by=_me(), reason="signed out by the user")
    if current:
        flash("You have signed out.", "info")
        target = url_for("auth.login")
        if is_htmx():
            return Response("", 200, {"HX-Redirect": target})
        return redirect(target)
    if is_htmx():
        return _own_list()
    flash("That device is signed out.", "info")
    return redirect(url_for("sessions.index"))


@bp.post("/revoke-others")
@feature("session_self_service")
@requires(Permission.PORTAL_VIEW)
@owner_only("manage sessions")
def revoke_others() -> Response | str:
    count = revoke_user_sessions(
        _me(), by=_me(), reason="signed out by the user", keep=g.user_session
    )
    if is_htmx():
        return _own_list()
    flash(f"Signed out {counted(count, 'other session')}.", "info")
    return redirect(url_for("sessions.index"))


# --- The admin's view of every session -----------------------------------------------------


def _partner_sessions(email: str, sort: str) -> list[UserSession]:
    now = utcnow()
    idle = timedelta(minutes=current_partner.session_policy.idle_minutes)
    stmt = (
        live_sessions_query(now, idle)
        .join(User, User.id == UserSession.user_id)
        # The user and any support agent of each row in the same statement.
        .options(contains_eager(UserSession.user), joinedload(UserSession.impersonator))
    )
    if email:
        stmt = stmt.where(User.email.like(contains_pattern(email.lower()), escape="\\"))
    order = UserSession.last_seen_at.asc() if sort == "oldest" else UserSession.last_seen_at.desc()
    return list(db.session.execute(stmt.order_by(order, UserSession.id).limit(500)).scalars())


@admin_bp.get("/", endpoint="index")
@requires(Permission.SESSIONS_REVOKE_ANY)
@owner_only("manage sessions")
def admin_index() -> str:
    email = request.args.get("user", "").strip()[:100]
    sort = "oldest" if request.args.get("sort") == "oldest" else "recent"
    sessions = _partner_sessions(email, sort)
    template = "sessions/_admin_table.html" if is_htmx() else "sessions/admin.html"
    return render_template(
        template, sessions=sessions, email=email, sort=sort, current=g.user_session
    )


def _back(default: str) -> Response:
    return redirect(local_path(request.form.get("back"), default, prefix="/admin/"))


@admin_bp.post("/<int:session_id>/revoke")
@requires(Permission.SESSIONS_REVOKE_ANY)
@owner_only("manage sessions")
def revoke_one(session_id: int) -> Response:
    record = get_or_404(UserSession, session_id)
    if record.impersonator_id is not None and end_for_session(record, by=_me()):
        flash(
            f"Support session of {record.impersonator.email} as {record.user.email} ended.",
            "info",
        )
    elif revoke_user_session(record, by=_me(), reason=_reason("revoked by an administrator")):
        flash(f"Session of {record.user.email} ended.", "info")
    else:
        flash("That session had already ended.", "info")
    return _back(url_for("sessions_admin.index"))


@admin_bp.post("/user/<int:user_id>/revoke")
@requires(Permission.SESSIONS_REVOKE_ANY)
@owner_only("manage sessions")
def revoke_user(user_id: int) -> Response:
    user = get_or_404(User, user_id)
    keep = g.user_session if user.id == _me().id else None
    count = revoke_user_sessions(
        user, by=_me(), reason=_reason("revoked by an administrator"), keep=keep
    )
    flash(f"Ended {counted(count, 'session')} of {user.email}.", "info")
    return _back(url_for("sessions_admin.index"))


@admin_bp.post("/revoke-all")
@requires(Permission.SESSIONS_REVOKE_ANY)
@owner_only("manage sessions")
def revoke_all() -> Response:
    count = revoke_partner_sessions(
        by=_me(), reason=_reason("all sessions revoked by an administrator"), keep=g.user_session
    )
    flash(f"Ended {counted(count, 'session')}. Everyone else must sign in again.", "info")
    return redirect(url_for("sessions_admin.index"))


def init_app(app: Flask) -> None:
    app.jinja_env.filters["device_label"] = device_label
    app.register_blueprint(bp)
    app.register_blueprint(admin_bp)
