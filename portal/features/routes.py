"""/admin/features: the partner's switches, with the effective state and the reason."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.extensions import db
from portal.features.catalogue import CATALOGUE, Scope
from portal.features.evaluation import evaluate
from portal.features.services import switch_feature
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.subscriptions.models import Plan, PlanStatus
from portal.unit_of_work import attempt
from portal.web import is_htmx, refused

bp = Blueprint("features_admin", __name__, subdomain="<partner>", url_prefix="/admin/features")


def _granting_plans() -> dict[str, list[str]]:
    """For each plan-gated feature, the active plans that include it."""
    plans = db.session.execute(
        select(Plan).where(Plan.status == PlanStatus.ACTIVE).order_by(Plan.position)
    ).scalars()
    granted: dict[str, list[str]] = {}
    for plan in plans:
        for key in plan.entitlements:
            granted.setdefault(key, []).append(plan.name)
    return granted


def _row_context(key: str, error: str | None = None) -> dict:
    return {"item": evaluate(key), "granted": _granting_plans(), "error": error, "Scope": Scope}


@bp.get("/")
@requires(Permission.FEATURES_MANAGE)
def index() -> str:
    items = [evaluate(key) for key in CATALOGUE]
    return render_template(
        "features/index.html", items=items, granted=_granting_plans(), Scope=Scope
    )


@bp.post("/<key>")
@requires(Permission.FEATURES_MANAGE)
def switch(key: str) -> Response | tuple[str, int]:
    if key not in CATALOGUE:
        abort(404)
    try:
        with attempt():
            switch_feature(key, request.form.get("on") == "1")
    except PortalError as exc:
        if is_htmx():
            # The row redrawn as it really is, with the reason beside it.
            return render_template("features/_row.html", **_row_context(key, str(exc))), 409
        return refused(exc, url_for("features_admin.index"))
    if is_htmx():
        return render_template("features/_row.html", **_row_context(key)), 200
    flash(f"{CATALOGUE[key].label} is {'on' if evaluate(key).on else 'off'}.", "info")
    return redirect(url_for("features_admin.index"))
