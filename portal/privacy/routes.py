"""Pages: /account/data (a user's copy and closing), erasure and retention settings for admins,
offboarding in the operator console."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.extensions import db
from portal.privacy import offboarding
from portal.privacy.services import (
    cancel_closure,
    downloadable_export,
    erase_user,
    is_downloadable,
    latest_export,
    request_closure,
    request_export,
)
from portal.privacy.settings import RETENTION_FIELDS, update_retention
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.support.guards import owner_only
from portal.tenancy.context import get_or_404
from portal.tenancy.models import Partner
from portal.unit_of_work import attempt
from portal.users.models import User
from portal.web import perform, refused

account_data_bp = Blueprint("account_data", __name__, subdomain="<partner>")
privacy_admin_bp = Blueprint("privacy_admin", __name__, subdomain="<partner>")
privacy_operator_bp = Blueprint("privacy_operator", __name__)


def _me() -> User:
    return current_user._get_current_object()


# --- /account/data ------------------------------------------------------------------------------


@account_data_bp.get("/account/data")
@requires(Permission.PORTAL_VIEW)
@owner_only("download or close the account")
def index() -> str:
    user = _me()
    export = latest_export(user)
    return render_template(
        "privacy/account_data.html",
        user=user,
        export=export,
        ready=export if is_downloadable(export) else None,
        keep_hours=current_app.config["EXPORT_KEEP_HOURS"],
        cooling_off=g.partner.retention.closing_days,
    )


@account_data_bp.post("/account/data/export")
@requires(Permission.PORTAL_VIEW)
@owner_only("download or close the account")
def export() -> Response:
    def act() -> str:
        request_export(_me())
        return "Your copy is being prepared. This page offers it as soon as it is ready."

    return perform(act, back=url_for("account_data.index"))


@account_data_bp.get("/account/data/download")
@requires(Permission.PORTAL_VIEW)
@owner_only("download or close the account")
def download() -> Response:
    ready = downloadable_export(_me())
    if ready is None:
        flash("There is no copy to download; ask for a new one.", "error")
        return redirect(url_for("account_data.index"))
    response = Response(ready.content, mimetype="application/json")
    stamp = ready.ready_at.strftime("%Y%m%d-%H%M") if ready.ready_at else "export"
    response.headers["Content-Disposition"] = f'attachment; filename="my-data-{stamp}.json"'
    return response


@account_data_bp.post("/account/data/close")
@requires(Permission.PORTAL_VIEW)
@owner_only("download or close the account")
def close() -> Response:
    def act() -> str:
        when = request_closure(
            _me(),
            password=request.form.get("password", "")[:200],
            signed_in_at=g.user_session.created_at,
            client_ip=request.remote_addr,
        )
        return (
            f"Your account closes on {when:%Y-%m-%d %H:%M} UTC. Until then you can cancel "
            "here; after it, your personal data is erased."
        )

    return perform(act, back=url_for("account_data.index"))


@account_data_bp.post("/account/data/close/cancel")
@requires(Permission.PORTAL_VIEW)
@owner_only("download or close the account")
def cancel() -> Response:
    def act() -> str:
        cancel_closure(_me(), by=_me())
        return "Your account stays open."

    return perform(act, back=url_for("account_data.index"))


# --- Admins: erasure, cancelling a closure, retention -------------------------------------------


@privacy_admin_bp.post("/admin/users/<int:user_id>/erase")
@requires(Permission.USERS_DEACTIVATE)
def erase(user_id: int) -> Response:
    user = get_or_404(User, user_id)
    back = url_for("users_admin.detail", user_id=user_id)

    def act() -> str:
        if request.form.get("confirm") != "erase":
            raise offboarding.OffboardingError("Tick the confirmation to erase this person's data.")
        erase_user(user, by=_me())
        return "The person's data is erased; the account is kept as an anonymised placeholder."

    return perform(act, back=back)


@privacy_admin_bp.post("/admin/users/<int:user_id>/closure/cancel")
@requires(Permission.USERS_DEACTIVATE)
def cancel_user_closure(user_id: int) -> Response:
    user = get_or_404(User, user_id)

    def act() -> str:
        cancel_closure(user, by=_me())
        return f"{user.email} stays open; the closure is cancelled."

    return perform(act, back=url_for("users_admin.detail", user_id=user_id))


@privacy_admin_bp.route("/admin/settings/retention", methods=["GET", "POST"])
@requires(Permission.SETTINGS_MANAGE)
def retention() -> tuple[str, int] | Response:
    values: dict[str, object] = g.partner.retention.to_dict()
    error = None
    if request.method == "POST":
        values = {name: request.form.get(name, "").strip()[:6] for name in RETENTION_FIELDS}
        try:
            with attempt():
                update_retention(values)
        except PortalError as exc:
            error = exc.message
        else:
            flash("Retention saved. The next maintenance run applies it.", "info")
            return redirect(url_for("privacy_admin.retention"))
    return render_template(
        "privacy/retention.html",
        values=values,
        fields=RETENTION_FIELDS,
        error=error,
        min_audit_years=current_app.config["RETENTION_AUDIT_MIN_YEARS"],
        max_days=current_app.config["RETENTION_MAX_DAYS"],
    ), 422 if error else 200


# --- Operators: offboarding ---------------------------------------------------------------------


def _operator() -> object:
    return current_user._get_current_object()


@privacy_operator_bp.get("/operator/partners/<int:partner_id>/offboarding")
def offboarding_page(partner_id: int) -> str:
    partner = db.get_or_404(Partner, partner_id)
    return render_template("privacy/offboarding.html", partner=partner)


@privacy_operator_bp.post("/operator/partners/<int:partner_id>/archive")
def archive(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)
    data = offboarding.export_archive(partner, actor=_operator())
    response = Response(data, mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{partner.slug}-archive.zip"'
    return response


@privacy_operator_bp.post("/operator/partners/<int:partner_id>/close")
def close_partner(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)
    back = url_for("privacy_operator.offboarding_page", partner_id=partner_id)

    def act() -> str:
        raw = request.form.get("grace_days", "").strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
            raise offboarding.OffboardingError("Grace period: enter a whole number of days.")
        if request.form.get("confirm") != partner.slug:
            raise offboarding.OffboardingError("Type the partner's address name to confirm.")
        when = offboarding.close_partner(_operator(), partner, int(raw))
        return f"{partner.name} is closed. Its data can be deleted from {when:%Y-%m-%d %H:%M} UTC."

    return perform(act, back=back)


@privacy_operator_bp.post("/operator/partners/<int:partner_id>/reopen")
def reopen(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)

    def act() -> str:
        offboarding.reopen_partner(_operator(), partner)
        return f"{partner.name} is no longer closed; it is suspended until you reactivate it."

    return perform(act, back=url_for("privacy_operator.offboarding_page", partner_id=partner_id))


@privacy_operator_bp.post("/operator/partners/<int:partner_id>/delete")
def delete(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)
    name = partner.name

    try:
        if request.form.get("understood") != "1":
            raise offboarding.OffboardingError("Tick that you understand this deletes everything.")
        with attempt():
            counts = offboarding.delete_partner(
                _operator(), partner, confirm_slug=request.form.get("confirm", "")[:60]
            )
    except PortalError as exc:
        return refused(exc, url_for("privacy_operator.offboarding_page", partner_id=partner_id))
    flash(f"{name} is deleted: {sum(counts.values())} rows.", "info")
    return redirect(url_for("operator.index"))
