"""/admin/settings/login: the partner's identity provider and which ways of signing in it offers."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.features.evaluation import evaluate
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy, requires
from portal.sso.client import Probe, discovery_document_url, probe_provider
from portal.sso.forms import ConnectionForm
from portal.sso.http import AddressRefused
from portal.sso.services import (
    ConnectionInput,
    ConnectionInvalid,
    current_connection,
    record_probe,
    remove_connection,
    save_connection,
    set_login_methods,
)
from portal.unit_of_work import attempt
from portal.web import perform

bp = Blueprint("sso_admin", __name__, subdomain="<partner>", url_prefix="/admin/settings/login")


def _form() -> ConnectionForm:
    connection = current_connection()
    form = ConnectionForm(obj=connection if request.method == "GET" else None)
    form.provision_role.choices = [
        (r.value, current_policy().label(r))
        for r in current_policy().enabled_roles()
        if not r.is_admin
    ]
    if request.method == "GET":
        form.client_secret.data = ""
        if connection is not None:
            form.allowed_domains.data = "\n".join(connection.allowed_domains or [])
            form.provision_role.data = connection.provision_role.value
        else:
            form.provision_role.data = Role.BASIC.value
        form.sso_on.data = evaluate("oidc_login").partner_on
        form.password_on.data = evaluate("password_login").partner_on
    return form


def _say_probe(probe: Probe, *, saved: bool) -> None:
    if probe.ok:
        flash("Connection test passed: " + " ".join(probe.notes), "info")
    elif saved:
        flash(
            f"Saved, but the connection test failed: {probe.problem} Nobody can sign in with "
            "single sign-on until a test passes.",
            "error",
        )
    else:
        flash(f"Connection test failed: {probe.problem}", "error")


@bp.route("/", methods=["GET", "POST"])
@requires(Permission.SETTINGS_MANAGE)
def index() -> tuple[str, int] | Response:
    form = _form()
    errors: dict[str, str] = {}
    if request.method == "POST" and form.validate_on_submit():
        existing = current_connection()
        address = form.discovery_url.data.strip()
        probe = None
        try:
            if existing is None or existing.discovery_url != address:
                probe = probe_provider(address)
            with attempt():
                save_connection(
                    ConnectionInput(
                        discovery_url=address,
                        client_id=form.client_id.data,
                        client_secret=form.client_secret.data,
                        scopes=form.scopes.data or "",
                        button_label=form.button_label.data or "",
                        allowed_domains=form.allowed_domains.data or "",
                        auto_provision=form.auto_provision.data,
                        provision_role=form.provision_role.data or "",
                        link_by_email=form.link_by_email.data,
                    ),
                    probe,
                )
                switched = set_login_methods(
                    sso_on=form.sso_on.data, password_on=form.password_on.data
                )
        except AddressRefused as exc:
            errors["discovery_url"] = exc.message
        except ConnectionInvalid as exc:
            errors[exc.field] = exc.message
        except PortalError as exc:
            errors["form"] = exc.message
        else:
            flash("Single sign-on settings saved.", "info")
            if probe is not None:
                _say_probe(probe, saved=True)
            for message in switched:
                flash(message, "info")
            return redirect(url_for("sso_admin.index"))
    elif request.method == "POST":
        errors.update({name: " ".join(messages) for name, messages in form.errors.items()})
    connection = current_connection()
    return render_template(
        "sso/settings.html",
        form=form,
        errors=errors,
        connection=connection,
        callback_url=url_for("sso.callback", _external=True),
        logout_url=url_for("sso.backchannel_logout", _external=True),
        discovery=discovery_document_url(connection.discovery_url) if connection else None,
        sso=evaluate("oidc_login"),
        password=evaluate("password_login"),
    ), 422 if errors else 200


@bp.post("/test")
@requires(Permission.SETTINGS_MANAGE)
def test() -> Response:
    back = url_for("sso_admin.index")
    connection = current_connection()
    if connection is None:
        flash("Save the provider's settings first.", "error")
        return redirect(back)
    try:
        probe = probe_provider(connection.discovery_url)
    except AddressRefused as exc:
        flash(f"Connection test failed: {exc.message}", "error")
        return redirect(back)
    with attempt():
        record_probe(probe)
    _say_probe(probe, saved=False)
    return redirect(back)


@bp.post("/delete")
@requires(Permission.SETTINGS_MANAGE)
def delete() -> Response:
    def action() -> str:
        removed = remove_connection()
        return "The identity provider was removed." if removed else "No provider was set up."

    return perform(action, back=url_for("sso_admin.index"))
