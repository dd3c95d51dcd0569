"""/reports: the plan-gated usage report (the demo of a feature a plan unlocks)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.clock import utcnow
from portal.extensions import db
from portal.features.evaluation import feature
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.sessions.devices import device_label
from portal.sessions.models import UserSession

bp = Blueprint("reports", __name__, subdomain="<partner>", url_prefix="/reports")
DAYS = 30


@bp.get("/")
@feature("reports")
@requires(Permission.PORTAL_VIEW)
def index() -> str:
    """The user's own sign-ins and devices over the last 30 days."""
    me = current_user._get_current_object()
    since = utcnow() - timedelta(days=DAYS)
    logins = (
        db.session.execute(
            select(AuditEvent.created_at).where(
                AuditEvent.action == "auth.login",
                AuditEvent.target_type == "users",
                AuditEvent.target_id == str(me.id),
                AuditEvent.created_at >= since,
            )
        )
        .scalars()
        .all()
    )
    per_day = Counter(moment.date() for moment in logins)
    sessions = db.session.execute(
        select(UserSession.user_agent).where(
            UserSession.user_id == me.id, UserSession.created_at >= since
        )
    ).scalars()
    devices = Counter(device_label(agent) for agent in sessions)
    days = [(since + timedelta(days=i + 1)).date() for i in range(DAYS)]
    peak = max(per_day.values(), default=0)
    return render_template(
        "reports/index.html",
        days=days,
        per_day=per_day,
        peak=peak,
        total=len(logins),
        devices=devices.most_common(),
    )
