"""A partner never reaches zero active admins through the portal; operators can still give it one.

`flask partner grant-admin SLUG EMAIL` and the console's Admins page call the same service, each
in one transaction, audited in the partner's trail and the platform's.
"""

from __future__ import annotations

import pytest
from conftest import PASSWORD, host_client, make_user, rows
from flask import Flask
from sqlalchemy import update

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.tenancy.scope import unscoped
from portal.users.models import User, UserStatus


@pytest.fixture
def stranded(data: Flask, acme: Partner, acme_admin: User) -> User:
    """Acme's only admin deactivated behind the portal's back (as an old race could leave it)."""
    with unscoped():
        db.session.execute(
            update(User).where(User.id == acme_admin.id).values(status=UserStatus.DEACTIVATED)
        )
        db.session.commit()
    return acme_admin


def actions(action: str) -> list[AuditEvent]:
    return rows(AuditEvent, action=action)


def test_cli_makes_an_existing_user_an_active_admin_again(
    app: Flask, data: Flask, stranded: User
) -> None:
    result = data.test_cli_runner().invoke(args=["partner", "grant-admin", "acme", stranded.email])
    assert result.exit_code == 0, result.output
    assert "root@acme.test is now an active admin of Acme Corp." in result.output
    [user] = rows(User, id=stranded.id)
    assert (user.role, user.status) == (Role.ADMIN, UserStatus.ACTIVE)
    [granted] = actions("user.admin_granted")
    assert granted.partner_id == stranded.partner_id and granted.target_id == str(user.id)
    assert granted.details["from"] == {"role": "admin", "status": "deactivated"}
    [platform] = actions("partner.admin_granted")
    assert platform.partner_id is None and platform.details == {"email": "root@acme.test"}
    # The recovered admin signs in and manages users again.
    client = host_client(app, "acme")
    assert client.login(stranded.email).status_code == 302
    assert client.get("/admin/users/").status_code == 200


def test_cli_promotes_a_support_agent_and_drops_the_capability(data: Flask, acme: Partner) -> None:
    agent = make_user(acme, "agent@acme.test", role=Role.BASIC, is_support=True)
    result = data.test_cli_runner().invoke(args=["partner", "grant-admin", "acme", agent.email])
    assert result.exit_code == 0, result.output
    [user] = rows(User, id=agent.id)
    assert user.role == Role.ADMIN and not user.is_support  # admins are never support agents


def test_cli_invites_an_unknown_address_as_admin(data: Flask, stranded: User) -> None:
    result = data.test_cli_runner().invoke(
        args=["partner", "grant-admin", "acme", "New.Boss@Acme.test"]
    )
    assert result.exit_code == 0, result.output
    assert "new.boss@acme.test was invited as an admin of Acme Corp." in result.output
    [user] = rows(User, email="new.boss@acme.test")
    assert (user.role, user.status) == (Role.ADMIN, UserStatus.INVITED)
    [mail] = rows(OutboxMessage, to_address="new.boss@acme.test")
    assert "/invite/" in mail.body_text


def test_cli_refusals_write_nothing(data: Flask, stranded: User) -> None:
    runner = data.test_cli_runner()
    bad = runner.invoke(args=["partner", "grant-admin", "acme", "not-an-address"])
    assert bad.exit_code == 1 and "Enter a valid email address" in bad.output
    missing = runner.invoke(args=["partner", "grant-admin", "nope", "x@acme.test"])
    assert missing.exit_code == 1 and "No partner with the address name 'nope'" in missing.output
    assert actions("user.admin_granted") == actions("partner.admin_granted") == []
    assert rows(User, status=UserStatus.ACTIVE, role=Role.ADMIN) == []


def test_a_refused_partner_creation_leaves_nothing_behind(data: Flask) -> None:
    """One command, one transaction: the partner is not kept when its admin is refused."""
    result = data.test_cli_runner().invoke(
        args=["partner", "create", "--slug", "hooli", "--name", "Hooli", "--admin-email", "nope"]
    )
    assert result.exit_code == 1 and "Enter a valid email address" in result.output
    assert rows(Partner, slug="hooli") == [] and actions("partner.create") == []


def test_console_shows_a_stranded_partner_and_grants_an_admin(
    app: Flask, data: Flask, stranded: User
) -> None:
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    console = host_client(app, None)
    assert console.login("op@portal.test").status_code == 302
    assert "Admins" in console.get("/operator/").text
    path = f"/operator/partners/{stranded.partner_id}/admins"
    page = console.get(path).text
    assert "No active admin" in page and "root@acme.test" in page
    done = console.post_form(path, {"email": "root@acme.test"}, follow_redirects=True)
    assert done.status_code == 200
    assert "root@acme.test is now an active admin of Acme Corp." in done.text
    assert "1 active admin." in done.text
    [granted] = actions("user.admin_granted")
    assert granted.actor_label == "op@portal.test"
    refused = console.post_form(path, {"email": "???"}, follow_redirects=True)
    assert "Enter a valid email address" in refused.text
    assert console.get("/operator/partners/999999/admins").status_code == 404
