"""/admin/settings: the partner's sign-up settings."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy, requires
from portal.settings.services import (
    PolicyProblems,
    SettingsError,
    update_default_role,
    update_session_policy,
    update_support_policy,
)
from portal.tenancy.models import SessionPolicy
from portal.unit_of_work import attempt

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
            with attempt():
                update_default_role(Role(value))
        except PortalError as exc:
            error = str(exc)
        else:
            flash("Settings saved.", "info")
            return redirect(url_for("settings_admin.index"))
    policy = current_policy()
    choices = [r for r in policy.enabled_roles() if not r.is_admin]
    return render_template(
        "settings/index.html", partner=g.partner, choices=choices, policy=policy, error=error
    ), 422 if error else 200


FIELDS = {
    "idle_minutes": ("Idle timeout (minutes)", int),
    "absolute_hours": ("Absolute lifetime (hours)", int),
    "max_concurrent": ("Maximum concurrent sessions per user", int),
    "remember_me_days": ("Remember-me lasts (days)", int),
}


@bp.route("/sessions", methods=["GET", "POST"])
@requires(Permission.SETTINGS_MANAGE)
def sessions() -> tuple[str, int] | Response:
    errors: dict[str, str] = {}
    values: dict[str, object] = g.partner.session_policy.to_dict()
    if request.method == "POST":
        for name, (label, kind) in FIELDS.items():
            raw = request.form.get(name, "").strip()
            try:
                values[name] = kind(raw)
            except ValueError:
                values[name] = raw
                errors[name] = f"{label}: enter a whole number."
        values["at_limit"] = request.form.get("at_limit", "")
        values["remember_me_allowed"] = request.form.get("remember_me_allowed") == "1"
        if errors:
            # The numbers that are numbers are checked too: every problem is flagged at once.
            whole = {k: v for k, v in values.items() if k not in errors}
            errors.update(PolicyProblems(SessionPolicy.problems_of(whole)).fields)
        else:
            try:
                with attempt():
                    update_session_policy(values)
            except PolicyProblems as exc:
                errors.update(exc.fields)
            except PortalError as exc:
                errors["form"] = str(exc)
            else:
                flash("Session policy saved. It applies from every user's next request.", "info")
                return redirect(url_for("settings_admin.sessions"))
    return render_template(
        "settings/sessions.html", values=values, errors=errors, fields=FIELDS
    ), 422 if errors else 200


@bp.route("/support", methods=["GET", "POST"])
@requires(Permission.SETTINGS_MANAGE)
def support() -> tuple[str, int] | Response:
    """Support sessions: their time limit, and whether the user is emailed at the start."""
    policy = g.partner.session_policy
    values: dict[str, object] = {
        "impersonation_minutes": policy.impersonation_minutes,
        "impersonation_notify": policy.impersonation_notify,
    }
    error = None
    if request.method == "POST":
        raw = request.form.get("impersonation_minutes", "").strip()
        values = {
            "impersonation_minutes": raw,
            "impersonation_notify": request.form.get("impersonation_notify") == "1",
        }
        try:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
                raise SettingsError("Time limit: enter a whole number of minutes.")
            with attempt():
                update_support_policy(int(raw), bool(values["impersonation_notify"]))
        except PortalError as exc:
            error = str(exc)
        else:
            flash(
                "Support settings saved. They apply to support sessions started from now on.",
                "info",
            )
            return redirect(url_for("settings_admin.support"))
    return render_template(
        "settings/support.html", values=values, error=error
    ), 422 if error else 200
