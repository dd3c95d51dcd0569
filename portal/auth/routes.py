"""Partner-host login and logout."""

from __future__ import annotations

from flask import Blueprint, abort, g, render_template, request
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.forms import LoginForm
from portal.auth.guards import public
from portal.auth.pages import end_login, password_login_page
from portal.auth.services import login_with_password, logout_user_session
from portal.features.evaluation import feature_on
from portal.sso.services import sign_in_connection
from portal.support.guards import impersonating

bp = Blueprint("auth", __name__, subdomain="<partner>")


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> tuple[str, int] | Response:
    sso = sign_in_connection()
    if not feature_on("password_login"):
        status = 403 if request.method == "POST" else 200
        page = render_template("auth/login.html", form=LoginForm(), password_off=True, sso=sso)
        return page, status
    return password_login_page(
        kind="user",
        home="home.index",
        template="auth/login.html",
        login=login_with_password,
        context={"sso": sso},
    )


@bp.post("/logout")
def logout() -> Response:
    acting = impersonating()
    if acting is not None:
        abort(
            403,
            f"You are acting as {acting.target_email}. Press Stop at the top of the page to "
            "return to your own account first, then sign out.",
        )
    user = current_user._get_current_object()
    return end_login(lambda: logout_user_session(g.user_session, user), "auth.login")
