"""/admin/audit: the partner's audit trail, filterable, and its CSV export (a feature)."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, render_template, request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.features.evaluation import feature
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.support.models import Impersonation
from portal.users.queries import contains_pattern

bp = Blueprint("audit_admin", __name__, subdomain="<partner>", url_prefix="/admin/audit")
PER_PAGE = 50
EXPORT_LIMIT = 50_000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")  # what a spreadsheet may evaluate


def _filtered() -> tuple[Select, dict[str, str]]:
    filters = {
        "action": request.args.get("action", "").strip()[:80],
        "actor": request.args.get("actor", "").strip()[:100],
        "target": request.args.get("target", "").strip()[:64],
        "support": "1" if request.args.get("support") == "1" else "",
    }
    stmt = select(AuditEvent)
    if filters["action"]:
        stmt = stmt.where(AuditEvent.action == filters["action"])
    if filters["actor"]:
        pattern = contains_pattern(filters["actor"].lower())
        stmt = stmt.where(func.lower(AuditEvent.actor_label).like(pattern, escape="\\"))
    if filters["target"]:
        stmt = stmt.where(AuditEvent.target_id == filters["target"])
    if filters["support"]:  # done while a support agent acted as a user
        stmt = stmt.where(AuditEvent.impersonation_id.is_not(None))
    return stmt, filters


def _impersonations(events: list[AuditEvent]) -> dict[int, Impersonation]:
    """The impersonations the events were made in (their user, reason and ticket)."""
    ids = {e.impersonation_id for e in events if e.impersonation_id is not None}
    if not ids:
        return {}
    found = db.session.execute(
        select(Impersonation)
        .options(selectinload(Impersonation.target))
        .where(Impersonation.id.in_(ids))
    ).scalars()
    return {i.id: i for i in found}


def _actions() -> list[str]:
    """The partner's distinct actions, in order: a walk from each to the next one up the
    (partner, action) index, not a scan of every event (a million in a large partner)."""
    smallest = select(func.min(AuditEvent.action).label("action"))
    walk = smallest.cte("actions", recursive=True)
    following = (
        select(func.min(AuditEvent.action))
        .where(AuditEvent.action > walk.c.action)
        .scalar_subquery()
    )
    walk = walk.union_all(select(following).where(walk.c.action.is_not(None)))
    stmt = select(walk.c.action).where(walk.c.action.is_not(None)).order_by(walk.c.action)
    return list(db.session.execute(stmt).scalars())


@bp.get("/")
@requires(Permission.AUDIT_VIEW)
def index() -> str:
    stmt, filters = _filtered()
    try:
        page = max(1, min(int(request.args.get("page", 1)), 100_000))
    except ValueError:
        page = 1
    events = (
        db.session.execute(
            stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            .limit(PER_PAGE + 1)
            .offset((page - 1) * PER_PAGE)
        )
        .scalars()
        .all()
    )
    actions = _actions()
    return render_template(
        "audit/index.html",
        events=events[:PER_PAGE],
        impersonations=_impersonations(events),
        has_next=len(events) > PER_PAGE,
        page=page,
        filters=filters,
        actions=actions,
    )


@bp.get("/export.csv")
@feature("audit_export")
@requires(Permission.AUDIT_VIEW)
def export() -> Response:
    """The filtered trail as CSV (newest first, at most 50,000 rows)."""
    stmt, _filters = _filtered()
    rows = list(
        db.session.execute(
            stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(EXPORT_LIMIT)
        ).scalars()
    )
    impersonations = _impersonations(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "time_utc",
            "actor_type",
            "actor",
            "on_behalf_of_id",
            "on_behalf_of",
            "impersonation_id",
            "support_reason",
            "support_ticket",
            "action",
            "target_type",
            "target_id",
            "details",
            "ip",
            "request_id",
        ]
    )
    for e in rows:
        acting = impersonations.get(e.impersonation_id or 0)
        cells = [
            e.created_at.isoformat(),
            e.actor_type.value,
            e.actor_label,
            e.on_behalf_of_id or "",
            acting.target.email if acting and e.on_behalf_of_id else "",
            e.impersonation_id or "",
            acting.reason if acting else "",
            (acting.ticket or "") if acting else "",
            e.action,
            e.target_type or "",
            e.target_id or "",
            json.dumps(e.details, sort_keys=True),
            e.ip or "",
            e.request_id or "",
        ]
        # Every cell, not only the ones that look free-form today: a spreadsheet runs any.
        writer.writerow([neutralise(str(cell)) for cell in cells])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )


def neutralise(value: str) -> str:
    """Neutralise a spreadsheet formula in an exported cell (CSV injection): a leading
    apostrophe makes the cell text. Leading spaces do not hide one, in case a spreadsheet
    trims them."""
    return "'" + value if value.lstrip(" ")[:1] in FORMULA_STARTS else value
