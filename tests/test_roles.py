"""Role transitions, the role configuration pages and their safety rules."""

from __future__ import annotations

import itertools

import pytest
from conftest import logged_in, make_user, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.roles.models import Role, RoleSetting
from portal.roles.permissions import DEFAULT_PERMISSIONS, Permission, default_transitions
from portal.roles.policy import current_policy
from portal.roles.services import RoleConfigError, RoleInput, save_roles, save_transitions
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus
from portal.users.services import UserError, change_role, deactivate_user

DEFAULT_EDGES = default_transitions()
PAIRS = [(f, t) for f, t in itertools.product(Role, Role) if f != t]


@pytest.mark.parametrize("frm,to", PAIRS, ids=[f"{f.value}->{t.value}" for f, t in PAIRS])
def test_default_graph_every_edge(acme: Partner, acme_admin: User, frm: Role, to: Role) -> None:
    target = make_user(acme, "target@acme.test", role=frm)
    make_user(acme, "second-admin@acme.test", role=Role.ADMIN)  # so admin->x is not the last
    with partner_scope(acme):
        actor = db.session.get(User, acme_admin.id)
        target = db.session.get(User, target.id)
        if (frm, to) in DEFAULT_EDGES:
            change_role(actor, target, to)
            db.session.commit()
            assert db.session.get(User, target.id).role == to
        else:
            with pytest.raises(UserError, match="not allowed"):
                change_role(actor, target, to)
            db.session.rollback()
            assert db.session.get(User, target.id).role == frm


def test_company_user_cannot_change_roles_by_default(acme: Partner) -> None:
    company = make_user(acme, "co@acme.test", role=Role.COMPANY)
    target = make_user(acme, "t@acme.test", role=Role.GUEST)
    with partner_scope(acme), pytest.raises(UserError, match="may not change roles"):
        change_role(db.session.get(User, company.id), db.session.get(User, target.id), Role.BASIC)


def test_custom_graph_takes_effect(app: Flask, acme: Partner, acme_admin: User) -> None:
    company = make_user(acme, "co@acme.test", role=Role.COMPANY)
    target = make_user(acme, "t@acme.test", role=Role.GUEST)
    admin = logged_in(app, acme_admin)
    # Give company users the right to change roles, and allow guest -> advanced by company.
    form = {f"enabled_{r.value}": "1" for r in Role}
    form |= {f"label_{r.value}": r.value.title() for r in Role}
    for r in Role:
        perms = set(DEFAULT_PERMISSIONS[r])
        if r == Role.COMPANY:
            perms.add(Permission.USERS_EDIT_ROLE)
        form[f"perm_{r.value}"] = [p.value for p in perms]
    assert admin.post_form("/admin/roles/", form).status_code == 302
    edges = {f"edge_{f.value}_{t.value}": m.value for (f, t), m in DEFAULT_EDGES.items()}
    edges["edge_guest_advanced"] = "company"
    assert admin.post_form("/admin/roles/transitions", edges).status_code == 302
    co = logged_in(app, company)
    response = co.post_form(f"/admin/users/{target.id}/role", {"role": "advanced"})
    assert response.status_code == 302
    assert rows(User, id=target.id)[0].role == Role.ADVANCED
    # ...but company may not use an admin-only edge.
    response = co.post_form(f"/admin/users/{target.id}/role", {"role": "company"})
    assert rows(User, id=target.id)[0].role == Role.ADVANCED
    assert "Only Admin or higher" in co.get(response.headers["Location"]).text
    actions = [e.action for e in rows(AuditEvent)]
    assert "roles.update" in actions and "roles.transitions_update" in actions


def test_nobody_changes_their_own_role(app: Flask, acme: Partner, acme_admin: User) -> None:
    make_user(acme, "other-admin@acme.test", role=Role.ADMIN)
    admin = logged_in(app, acme_admin)
    response = admin.post_form(f"/admin/users/{acme_admin.id}/role", {"role": "basic"})
    assert "Nobody can change their own role." in admin.get(response.headers["Location"]).text
    assert rows(User, id=acme_admin.id)[0].role == Role.ADMIN


def _empower_company() -> None:
    """Let company users change roles and deactivate, and demote admins to company."""
    policy = current_policy()
    roles = {r: RoleInput(c.enabled, c.label, c.permissions) for r, c in policy.roles.items()}
    company = roles[Role.COMPANY]
    roles[Role.COMPANY] = RoleInput(
        True,
        company.label,
        company.permissions | {Permission.USERS_EDIT_ROLE, Permission.USERS_DEACTIVATE},
    )
    save_roles(roles)
    save_transitions({**policy.transitions, (Role.ADMIN, Role.COMPANY): Role.COMPANY})
    db.session.commit()


def test_last_active_admin_cannot_be_demoted_or_deactivated(
    acme: Partner, acme_admin: User
) -> None:
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    company = make_user(acme, "co@acme.test", role=Role.COMPANY)
    with partner_scope(acme):
        _empower_company()
        actor = db.session.get(User, company.id)
        change_role(actor, db.session.get(User, second.id), Role.COMPANY)  # two admins: fine
        db.session.commit()
        last = db.session.get(User, acme_admin.id)
        with pytest.raises(UserError, match="last active admin"):
            change_role(actor, last, Role.COMPANY)
        with pytest.raises(UserError, match="last active admin"):
            deactivate_user(actor, last)
        db.session.rollback()
    [stored] = rows(User, id=acme_admin.id)
    assert (stored.role, stored.status) == (Role.ADMIN, UserStatus.ACTIVE)


def test_admin_role_cannot_be_disabled_or_lose_its_floor(acme: Partner, acme_admin: User) -> None:
    with partner_scope(acme):
        policy = current_policy()
        roles = {r: RoleInput(c.enabled, c.label, c.permissions) for r, c in policy.roles.items()}
        with pytest.raises(RoleConfigError, match="admin role cannot be disabled"):
            save_roles({**roles, Role.ADMIN: RoleInput(False, "Admin", frozenset(Permission))})
        with pytest.raises(RoleConfigError, match="must keep"):
            save_roles({**roles, Role.ADMIN: RoleInput(True, "Admin", frozenset())})
        db.session.rollback()
    assert rows(RoleSetting) == []


def test_disabling_a_role_that_would_strand_users_is_refused(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    make_user(acme, "adv@acme.test", role=Role.ADVANCED)
    admin = logged_in(app, acme_admin)
    # Remove every transition out of advanced, then try to disable advanced.
    edges = {
        f"edge_{f.value}_{t.value}": m.value
        for (f, t), m in DEFAULT_EDGES.items()
        if f != Role.ADVANCED
    }
    assert admin.post_form("/admin/roles/transitions", edges).status_code == 302
    form = {f"label_{r.value}": r.value.title() for r in Role}
    form |= {f"enabled_{r.value}": "1" for r in Role if r != Role.ADVANCED}
    form |= {f"perm_{r.value}": [p.value for p in DEFAULT_PERMISSIONS[r]] for r in Role}
    response = admin.post_form("/admin/roles/", form)
    assert response.status_code == 422
    assert "1 user has the role advanced" in response.text
    assert all(s.enabled for s in rows(RoleSetting))
    # With a way out (advanced -> basic) the same change is accepted.
    edges["edge_advanced_basic"] = "admin"
    assert admin.post_form("/admin/roles/transitions", edges).status_code == 302
    saved = admin.post_form("/admin/roles/", form, follow_redirects=True)
    assert {s.role: s.enabled for s in rows(RoleSetting)}[Role.ADVANCED] is False
    # ... and the admin is told who still holds it (issue 16)
    assert (
        "1 user still holds Advanced, which is disabled: they keep its permissions until you "
        "give them another role"
    ) in saved.text


def test_permission_change_applies_on_next_request(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    basic = make_user(acme, "b@acme.test", role=Role.BASIC)
    client = logged_in(app, basic)
    assert client.get("/admin/users/").status_code == 403
    assert ">Users<" not in client.get("/").text
    admin = logged_in(app, acme_admin)
    form = {f"enabled_{r.value}": "1" for r in Role}
    form |= {f"label_{r.value}": r.value.title() for r in Role}
    form |= {f"perm_{r.value}": [p.value for p in DEFAULT_PERMISSIONS[r]] for r in Role}
    form["perm_basic"] = [*form["perm_basic"], "users.view"]
    assert admin.post_form("/admin/roles/", form).status_code == 302
    assert client.get("/admin/users/").status_code == 200  # same session, no re-login
    assert ">Users<" in client.get("/").text


def test_labels_show_up_and_bad_labels_are_refused(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = logged_in(app, acme_admin)
    form = {f"enabled_{r.value}": "1" for r in Role}
    form |= {f"label_{r.value}": r.value.title() for r in Role}
    form |= {f"perm_{r.value}": [p.value for p in DEFAULT_PERMISSIONS[r]] for r in Role}
    response = admin.post_form("/admin/roles/", {**form, "label_basic": "  "})
    assert response.status_code == 422
    assert "label of basic must be 1 to 40 characters" in response.text
    assert rows(RoleSetting) == []
    assert admin.post_form("/admin/roles/", {**form, "label_basic": "Member"}).status_code == 302
    assert "Member" in admin.get("/admin/users/").text
