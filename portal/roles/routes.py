"""Admin pages to configure roles, their permissions and the allowed transitions."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.roles.models import Role
from portal.roles.permissions import DESCRIPTIONS, Permission
from portal.roles.policy import current_policy, requires
from portal.roles.services import (
    RoleInput,
    holders_of_disabled_roles,
    save_roles,
    save_transitions,
)
from portal.unit_of_work import attempt

bp = Blueprint("roles_admin", __name__, subdomain="<partner>", url_prefix="/admin/roles")


def _parse_roles(form: MultiDict) -> dict[Role, RoleInput]:
    roles = {}
    for role in Role:
        chosen = set(form.getlist(f"perm_{role.value}"))
        roles[role] = RoleInput(
            enabled=role.is_admin or form.get(f"enabled_{role.value}") == "1",
            label=form.get(f"label_{role.value}", "")[:200],
            permissions=frozenset(p for p in Permission if p.value in chosen),
        )
    return roles


def _parse_edges(form: MultiDict) -> dict[tuple[Role, Role], Role]:
    edges = {}
    for frm in Role:
        for to in Role:
            value = form.get(f"edge_{frm.value}_{to.value}", "")
            if frm != to and value in Role._value2member_map_:
                edges[(frm, to)] = Role(value)
    return edges


@bp.route("/", methods=["GET", "POST"])
@requires(Permission.ROLES_MANAGE)
def index() -> tuple[str, int] | Response:
    error = None
    if request.method == "POST":
        try:
            with attempt():
                save_roles(_parse_roles(request.form))
        except PortalError as exc:
            error = str(exc)
        else:
            flash("Roles saved. The change applies to everyone's next request.", "info")
            policy = current_policy()
            for role, count in holders_of_disabled_roles().items():
                people = "1 user still holds" if count == 1 else f"{count} users still hold"
                flash(
                    f"{people} {policy.label(role)}, which is disabled: they keep its "
                    "permissions until you give them another role (Users, filter by role).",
                    "warning",
                )
            return redirect(url_for("roles_admin.index"))
    roles = _parse_roles(request.form) if error else None
    return render_template(
        "roles/index.html",
        policy=current_policy(),
        submitted=roles,
        permissions=list(Permission),
        descriptions=DESCRIPTIONS,
        roles=list(Role),
        error=error,
    ), 422 if error else 200


@bp.route("/transitions", methods=["GET", "POST"])
@requires(Permission.ROLES_MANAGE)
def transitions() -> tuple[str, int] | Response:
    error = None
    edges = current_policy().transitions
    if request.method == "POST":
        edges = _parse_edges(request.form)
        try:
            with attempt():
                save_transitions(edges)
        except PortalError as exc:
            error = str(exc)
        else:
            flash("Transitions saved.", "info")
            return redirect(url_for("roles_admin.transitions"))
    return render_template(
        "roles/transitions.html",
        policy=current_policy(),
        edges=edges,
        roles=list(Role),
        error=error,
    ), 422 if error else 200
