"""The operator console on the root domain."""

from __future__ import annotations

from flask import Blueprint, g, render_template
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from portal.auth.guards import public
from portal.auth.routes import end_login, password_login_page
from portal.auth.services import login_operator, logout_operator
from portal.extensions import db
from portal.tenancy.models import Partner
from portal.tenancy.scope import unscoped
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
