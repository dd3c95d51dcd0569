"""The operator console on the root domain."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from portal.auth.guards import public
from portal.auth.routes import end_login, password_login_page
from portal.auth.services import login_operator, logout_operator
from portal.extensions import db
from portal.features.catalogue import CATALOGUE
from portal.features.evaluation import evaluate
from portal.features.models import Lock
from portal.features.services import FeatureError, lock_feature
from portal.operator.models import Operator
from portal.operator.services import PartnerStateError, reactivate_partner, suspend_partner
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope, unscoped
from portal.users.models import User

bp = Blueprint("operator", __name__)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> tuple[str, int] | Response:
    return password_login_page(
        kind="operator", home="operator.index", template="operator/login.html", login=login_operator
    )


@bp.post("/logout")
def logout() -> Response:
    operator = current_user._get_current_object()
    return end_login(lambda: logout_operator(g.operator_session, operator), "operator.login")


@bp.get("/operator/")
def index() -> str:
    with unscoped():
        user_counts = dict(
            db.session.execute(
                select(User.partner_id, func.count()).group_by(User.partner_id)
            ).all()
        )
    partners = db.session.execute(select(Partner).order_by(Partner.name)).scalars().all()
    return render_template("operator/index.html", partners=partners, user_counts=user_counts)


@bp.post("/operator/partners/<int:partner_id>/suspend")
def suspend(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)
    try:
        ended = suspend_partner(_operator(), partner, request.form.get("reason", ""))
    except PartnerStateError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"{partner.name} is suspended; {ended} session(s) ended.", "info")
    return redirect(url_for("operator.index"))


@bp.post("/operator/partners/<int:partner_id>/reactivate")
def reactivate(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)
    try:
        reactivate_partner(_operator(), partner)
    except PartnerStateError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"{partner.name} is active again.", "info")
    return redirect(url_for("operator.index"))


def _operator() -> Operator:
    return current_user._get_current_object()


@bp.route("/operator/partners/<int:partner_id>/features", methods=["GET", "POST"])
def features(partner_id: int) -> str | Response:
    partner = db.get_or_404(Partner, partner_id)
    if request.method == "POST":
        key, value = request.form.get("key", ""), request.form.get("lock", "")
        try:
            if key not in CATALOGUE or value not in Lock._value2member_map_:
                raise FeatureError("Choose a feature and a lock.")
            lock_feature(_operator(), partner, key, Lock(value))
        except FeatureError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(f"{CATALOGUE[key].label} for {partner.name}: lock set to {value}.", "info")
        return redirect(url_for("operator.features", partner_id=partner.id))
    with partner_scope(partner):
        items = [evaluate(key) for key in CATALOGUE]
    return render_template("operator/features.html", partner=partner, items=items, locks=list(Lock))
