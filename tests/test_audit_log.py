"""The partner's audit log page and its CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from conftest import PASSWORD, host_client, logged_in, make_user, rows, set_feature
from flask import Flask

from portal.audit.models import AuditEvent
from portal.audit.routes import neutralise
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


FORMULA = '=HYPERLINK("http://evil.test","x")'


def test_csv_export_neutralises_every_cell(app: Flask, acme: Partner, acme_admin: User) -> None:
    """The address and request id are the sender's text too: no cell starts a formula."""
    set_feature(acme, "audit_export", True)
    admin = host_client(app, "acme")
    token = admin.csrf_token()
    signed_in = admin.post(
        "/login",
        data={"email": acme_admin.email, "password": PASSWORD, "csrf_token": token},
        headers={"X-Request-ID": "-2-3.cmd.exe"},  # the id's pattern allows a leading '-'
        environ_base={"REMOTE_ADDR": FORMULA},  # what a lax proxy could hand on
    )
    assert signed_in.status_code == 302
    [event] = rows(AuditEvent, action="auth.login")
    assert (event.ip, event.request_id) == (FORMULA, "-2-3.cmd.exe")  # stored as received
    exported = admin.get("/admin/audit/export.csv?action=auth.login")
    [row] = list(csv.DictReader(io.StringIO(exported.text)))
    assert row["ip"] == "'" + FORMULA
    assert row["request_id"] == "'-2-3.cmd.exe"
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())


@pytest.mark.parametrize(
    "value,exported",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1+1", "'  =1+1"),
        ("10.0.0.1", "10.0.0.1"),
        ("alice@acme.test", "alice@acme.test"),
        ("", ""),
    ],
)
def test_formula_cells_become_text(value: str, exported: str) -> None:
    assert neutralise(value) == exported
