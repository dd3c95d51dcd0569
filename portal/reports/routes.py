"""/reports: the plan-gated usage report (the demo of a feature a plan unlocks)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import Date, String, cast, func, literal, null, select, union_all

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


def _usage(user_id: int, since: datetime) -> tuple[Counter[date], Counter[str]]:
    """The user's sign-ins per day and sessions per device since `since`, counted by the
    database: two aggregates in one statement (UNION ALL), each row naming its own."""
    day = func.date(AuditEvent.created_at, type_=Date)
    sign_ins = (
        select(literal("sign-ins").label("kind"), day, cast(null(), String), func.count())
        .where(
            AuditEvent.action == "auth.login",
            AuditEvent.target_type == "users",
            AuditEvent.target_id == str(user_id),
            AuditEvent.created_at >= since,
        )
        .group_by(day)
    )
    devices = (
        select(literal("devices"), cast(null(), Date), UserSession.user_agent, func.count())
        .where(UserSession.user_id == user_id, UserSession.created_at >= since)
        .group_by(UserSession.user_agent)
    )
    per_day: Counter[date] = Counter()
    per_device: Counter[str] = Counter()
    for kind, on, agent, count in db.session.execute(union_all(sign_ins, devices)):
        if kind == "sign-ins":
            per_day[on] += count
        else:
            per_device[device_label(agent)] += count  # many user agents, one label
    return per_day, per_device


@bp.get("/")
@feature("reports")
@requires(Permission.PORTAL_VIEW)
def index() -> str:
    """The user's own sign-ins and devices over the last 30 days."""
    since = utcnow() - timedelta(days=DAYS)
    per_day, devices = _usage(current_user.id, since)
    days = [(since + timedelta(days=i + 1)).date() for i in range(DAYS)]
    peak = max(per_day.values(), default=0)
    return render_template(
        "reports/index.html",
        days=days,
        per_day=per_day,
        peak=peak,
        total=sum(per_day.values()),
        # The most used first; equal counts by name.
        devices=sorted(devices.items(), key=lambda item: (-item[1], item[0])),
    )
