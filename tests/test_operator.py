"""The operator console and `flask partner`: onboarding without a deploy, suspension, locks."""

from __future__ import annotations

import re

import pytest
from conftest import PASSWORD, host_client, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.features.models import FeatureSetting, Lock
from portal.mail.models import OutboxMessage
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.tenancy.models import Partner, PartnerStatus
from portal.users.models import User, UserStatus


@pytest.fixture
def console(app: Flask, data: Flask):
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    client = host_client(app, None)
    assert client.login("op@portal.test").status_code == 302
    return client


def test_onboard_a_partner_from_the_console(app: Flask, console, acme: Partner) -> None:
    form = {
        "name": "Initech",
        "slug": "initech",
        "admin_email": "Boss@Initech.test",
        "base_theme": "midnight",
        "primary_color": "#aa3300",
        "accent_color": "#111111",
    }
    for field, value, message in [
        ("slug", "www", "reserved"),
        ("slug", "acme", "is taken"),
        ("slug", "Bad Slug", "lowercase letters"),
        ("name", "  ", "1 to 120 characters"),
        ("admin_email", "nope", "valid email"),
        ("primary_color", "red", "colour"),
    ]:
        response = console.post_form("/operator/partners/new", {**form, field: value})
        assert response.status_code == 422 and message in response.text, field
    assert [p.slug for p in rows(Partner)] == ["acme"]
    assert console.post_form("/operator/partners/new", form).status_code == 302
    [initech] = rows(Partner, slug="initech")
    assert initech.theme.base == "midnight" and initech.theme.primary_color == "#aa3300"
    [boss] = rows(User, partner_id=initech.id)
    assert (boss.email, boss.role, boss.status) == (
        "boss@initech.test",
        Role.ADMIN,
        UserStatus.INVITED,
    )
    [mail] = rows(OutboxMessage, to_address="boss@initech.test")
    assert "The platform operator invited you to Initech" in mail.body_text
    path = re.search(r"http://initech\.localhost(/invite/\S+)", mail.body_text).group(1)
    invitee = host_client(app, "initech")
    invitee.post_form(path, {"display_name": "Bill", "password": PASSWORD, "confirm": PASSWORD})
    assert invitee.login("boss@initech.test").status_code == 302
    assert invitee.get("/admin/users/").status_code == 200  # a real admin of the new partner
    assert "Initech" in console.get("/operator/").text
    assert {e.partner_id for e in rows(AuditEvent, action="partner.create")} == {None, initech.id}


def test_suspend_and_reactivate_from_the_console(
    app: Flask, console, acme: Partner, acme_user
) -> None:
    user = host_client(app, "acme")
    user.login(acme_user.email)
    refused = console.post_form(f"/operator/partners/{acme.id}/suspend", {"reason": " "})
    assert "Give a reason" in console.get(refused.headers["Location"]).text
    console.post_form(f"/operator/partners/{acme.id}/suspend", {"reason": "contract ended"})
    assert rows(Partner, id=acme.id)[0].status == PartnerStatus.SUSPENDED
    assert "unavailable" in user.get("/").text
    console.post_form(f"/operator/partners/{acme.id}/reactivate")
    assert rows(Partner, id=acme.id)[0].status == PartnerStatus.ACTIVE
    assert user.get("/").status_code == 302  # the old session stays ended


def test_partner_cli(data: Flask, acme: Partner) -> None:
    runner = data.test_cli_runner()
    created = runner.invoke(
        args=[
            "partner",
            "create",
            "--slug",
            "hooli",
            "--name",
            "Hooli",
            "--admin-email",
            "g@hooli.test",
        ]
    )
    assert created.exit_code == 0, created.output
    assert "Hooli is live at hooli.localhost" in created.output
    taken = runner.invoke(
        args=["partner", "create", "--slug", "hooli", "--name", "X", "--admin-email", "x@x.test"]
    )
    assert taken.exit_code != 0 and "is taken" in taken.output
    assert runner.invoke(args=["partner", "lock", "hooli", "reports", "off"]).exit_code == 0
    [row] = rows(FeatureSetting, key="reports")
    assert row.lock == Lock.OFF
    assert runner.invoke(args=["partner", "suspend", "hooli", "--reason", "test"]).exit_code == 0
    listing = runner.invoke(args=["partner", "list"]).output
    assert re.search(r"hooli\s+suspended\s+users=1", listing)
    assert re.search(r"acme\s+active", listing)
    assert runner.invoke(args=["partner", "reactivate", "hooli"]).exit_code == 0
    missing = runner.invoke(args=["partner", "suspend", "nope", "--reason", "x"])
    assert missing.exit_code != 0 and "No partner" in missing.output


def test_partner_users_cannot_reach_the_console(app: Flask, acme: Partner, acme_admin) -> None:
    client = host_client(app, "acme")
    client.login(acme_admin.email)
    root = host_client(app, None)
    root.set_cookie(
        "portal_auth",
        client.get_cookie("portal_auth", domain="acme.localhost").value,
        domain="localhost",
    )
    assert root.get("/operator/partners/new").status_code == 302
    assert (
        root.post_form(
            "/operator/partners/new", {"slug": "evil", "name": "E", "admin_email": "e@e.test"}
        ).status_code
        == 302
    )
    assert rows(Partner, slug="evil") == []
