"""The partner's audit log page and its CSV export."""

from __future__ import annotations

import csv
import io

from conftest import logged_in, make_user, set_feature
from flask import Flask

from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User


def test_admin_reads_only_their_partners_trail(
    app: Flask, acme: Partner, acme_admin: User, globex_user: User
) -> None:
    admin = logged_in(app, acme_admin)
    admin.post_form("/admin/users/invite", {"email": "=cmd@acme.test", "role": "basic"})
    page = admin.get("/admin/audit/").text
    assert "invitation.send" in page and "auth.login" in page
    assert "gus@globex.test" not in page
    only = admin.get("/admin/audit/?action=invitation.send").text
    assert "invitation.send" in only and "<code>auth.login</code>" not in only
    assert admin.get("/admin/audit/?page=abc&actor=%25").status_code == 200


def test_audit_needs_the_permission(app: Flask, acme: Partner) -> None:
    company = logged_in(app, make_user(acme, "c@acme.test", role=Role.COMPANY))
    assert company.get("/admin/audit/").status_code == 403


def test_csv_export_is_a_feature(app: Flask, acme: Partner, acme_admin: User) -> None:
    admin = logged_in(app, acme_admin)
    admin.post_form("/admin/users/invite", {"email": "=cmd@acme.test", "role": "basic"})
    assert admin.get("/admin/audit/export.csv").status_code == 404
    assert "Download CSV" not in admin.get("/admin/audit/").text
    set_feature(acme, "audit_export", True)
    response = admin.get("/admin/audit/export.csv?action=invitation.send")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["action"] for r in rows] == ["invitation.send"]
    assert rows[0]["actor"] == "root@acme.test"
    assert all(not cell.startswith("=") for r in rows for cell in r.values())
