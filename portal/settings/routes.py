"""/admin/settings: the partner's sign-up settings."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from portal.extensions import db
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy, requires
from portal.settings.services import SettingsError, update_signup
from portal.users.models import Role

bp = Blueprint("settings_admin", __name__, subdomain="<partner>", url_prefix="/admin/settings")


@bp.route("/", methods=["GET", "POST"])
@requires(Permission.SETTINGS_MANAGE)
def index() -> tuple[str, int] | Response:
    error = None
    if request.method == "POST":
        value = request.form.get("default_role", "")
        try:
            if value not in Role._value2member_map_:
                raise SettingsError("Choose the role new users get.")
            update_signup(request.form.get("self_signup") == "1", Role(value))
        except SettingsError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            flash("Settings saved.", "info")
            return redirect(url_for("settings_admin.index"))
    policy = current_policy()
    choices = [r for r in policy.enabled_roles() if r != Role.ADMIN]
    return render_template(
        "settings/index.html", partner=g.partner, choices=choices, policy=policy, error=error
    ), 422 if error else 200
