"""The partner admin's user management: list, detail, invitations, deactivation, bulk actions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import PASSWORD, host_client, logged_in, make_user, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.mail.models import OutboxMessage
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.tokens.models import ActionToken
from portal.users.models import User, UserStatus

LINK_RE = re.compile(r"http://acme\.localhost/invite/[A-Za-z0-9_-]+")


@pytest.fixture
def admin(app: Flask, acme_admin: User):
    return logged_in(app, acme_admin)


@pytest.fixture
def people(acme: Partner) -> list[User]:
    return [
        make_user(
            acme,
            f"user{i:02d}@acme.test",
            role=Role.BASIC if i % 2 else Role.GUEST,
            display_name=f"Person {i:02d}",
        )
        for i in range(30)
    ]


def emails_on(page: str) -> list[str]:
    return re.findall(r'">([a-z0-9.@-]+@[a-z.]+)</a>', page)


def test_list_paginates_sorts_and_counts(admin, people) -> None:
    page = admin.get("/admin/users/").text
    assert "31 users." in page
    listed = emails_on(page)
    assert len(listed) == 25 and listed == sorted(listed)
    second = admin.get("/admin/users/?page=2").text
    assert len(emails_on(second)) == 6
    desc = emails_on(admin.get("/admin/users/?sort=email&direction=desc").text)
    assert desc[0] == "user29@acme.test"
    # Nonsense parameters fall back to defaults instead of failing.
    odd = admin.get("/admin/users/?page=abc&sort=drop&role=king&status=&direction=x")
    assert odd.status_code == 200 and "31 users." in odd.text
    assert "Page 2 of 2" in admin.get("/admin/users/?page=99").text


def test_search_and_filters(admin, people, globex_user) -> None:
    assert emails_on(admin.get("/admin/users/?q=user0").text) == [
        f"user0{i}@acme.test" for i in range(10)
    ]
    assert "user17@acme.test" in admin.get("/admin/users/?q=person+17").text
    basic = emails_on(admin.get("/admin/users/?role=basic").text)
    assert basic and all(int(e[4:6]) % 2 for e in basic)
    assert "15 users match" in admin.get("/admin/users/?role=basic").text
    # Another partner's users never show up, whatever the search.
    assert "gus@globex.test" not in admin.get("/admin/users/?q=gus").text
    assert "0 users match" in admin.get("/admin/users/?q=%25").text  # a literal %, not a wildcard


def test_htmx_gets_only_the_table(admin, people) -> None:
    response = admin.get("/admin/users/?q=user1", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text and "user10@acme.test" in response.text
    assert "HX-Request" in response.headers["Vary"]


def test_detail_of_another_partners_user_is_404(admin, globex_user, acme_user) -> None:
    assert admin.get(f"/admin/users/{acme_user.id}").status_code == 200
    missing = admin.get("/admin/users/999999")
    foreign = admin.get(f"/admin/users/{globex_user.id}")
    assert missing.status_code == foreign.status_code == 404
    main = re.compile(r"<main.*</main>", re.S)
    assert main.search(missing.text).group(0) == main.search(foreign.text).group(0)
    for action in ("deactivate", "reactivate", "support", "role"):
        assert admin.post_form(f"/admin/users/{globex_user.id}/{action}").status_code == 404
    [gus] = rows(User, id=globex_user.id)
    assert gus.status == UserStatus.ACTIVE and gus.role == Role.BASIC


def test_detail_page_shows_each_card_once_in_the_page_body(admin, acme_user) -> None:
    page = admin.get(f"/admin/users/{acme_user.id}").text
    assert (
        re.search(r"<title>(.*?)</title>", page, re.S).group(1) == f"{acme_user.email} · Acme Corp"
    )
    main = re.search(r"<main.*</main>", page, re.S).group(0)
    assert main.count('id="user-subscription"') == 1 and "No subscription." in main
    assert main.count("Active sessions (") == 1


def test_invitation_flow(app: Flask, admin, acme: Partner, frozen_clock) -> None:
    response = admin.post_form(
        "/admin/users/invite", {"email": "New.Person@Acme.test", "role": "advanced"}
    )
    assert response.status_code == 302
    [invited] = rows(User, email="new.person@acme.test")
    assert invited.status == UserStatus.INVITED and invited.password_hash is None
    assert invited.role == Role.ADVANCED
    [mail] = rows(OutboxMessage, to_address="new.person@acme.test")
    assert "Acme Corp" in mail.subject and "Ada Admin" in mail.body_text
    link = LINK_RE.search(mail.body_text).group(0)
    path = link.removeprefix("http://acme.localhost")

    invitee = host_client(app, "acme")
    page = invitee.get(path)
    assert page.status_code == 200 and "new.person@acme.test" in page.text
    assert "not a common password, and not your name or Acme Corp's." in page.text
    short = invitee.post_form(path, {"display_name": "New", "password": "x", "confirm": "x"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    for weak, says in (
        ("qwerty123456", "one of the most common"),
        ("new.person-2026", "must not contain"),  # their own address
        ("acme-forever-1", "must not contain"),  # the partner's name
    ):
        refused = invitee.post_form(
            path, {"display_name": "New Person", "password": weak, "confirm": weak}
        )
        assert refused.status_code == 422 and says in refused.text, weak
    [still] = rows(User, email="new.person@acme.test")
    assert still.status == UserStatus.INVITED and still.password_hash is None
    assert invitee.get(path).status_code == 200  # a refused password leaves the link usable
    accepted = invitee.post_form(
        path, {"display_name": "New Person", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert accepted.status_code == 302
    [user] = rows(User, email="new.person@acme.test")
    assert user.status == UserStatus.ACTIVE and user.display_name == "New Person"
    assert invitee.get(path).status_code == 404  # single use
    assert invitee.login("new.person@acme.test").status_code == 302
    assert "Welcome, New Person" in invitee.get("/").text
    actions = [e.action for e in rows(AuditEvent)]
    assert {"invitation.send", "invitation.accept"} <= set(actions)


def test_invitation_link_expires_and_is_bound_to_its_partner(
    app: Flask, admin, acme: Partner, globex: Partner, frozen_clock
) -> None:
    admin.post_form("/admin/users/invite", {"email": "late@acme.test", "role": "basic"})
    [mail] = rows(OutboxMessage, to_address="late@acme.test")
    path = LINK_RE.search(mail.body_text).group(0).removeprefix("http://acme.localhost")
    assert host_client(app, "globex").get(path).status_code == 404
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert host_client(app, "acme").get(tampered).status_code == 404
    frozen_clock.advance(timedelta(days=7, seconds=1))
    client = host_client(app, "acme")
    expired = client.get(path)
    assert expired.status_code == 404 and "not valid" in expired.text
    client.post_form(path, {"display_name": "L", "password": PASSWORD, "confirm": PASSWORD})
    assert rows(User, email="late@acme.test")[0].status == UserStatus.INVITED


def test_invite_refusals(admin, acme_user, globex_user) -> None:
    again = admin.post_form("/admin/users/invite", {"email": "ALICE@acme.test", "role": "basic"})
    assert again.status_code == 409  # a conflict with what is stored, not a malformed form
    assert "alice@acme.test is already a user of this portal." in again.text
    bad = admin.post_form("/admin/users/invite", {"email": "not-an-email", "role": "basic"})
    assert bad.status_code == 422 and "valid email address" in bad.text
    role = admin.post_form("/admin/users/invite", {"email": "x@acme.test", "role": "emperor"})
    assert role.status_code == 422
    # The same address in another partner is a different person: invite works.
    other = admin.post_form("/admin/users/invite", {"email": "gus@globex.test", "role": "basic"})
    assert other.status_code == 302
    assert {u.partner_id for u in rows(User, email="gus@globex.test")} == {
        acme_user.partner_id,
        globex_user.partner_id,
    }
    assert rows(User, email="x@acme.test") == []


def test_resend_and_revoke(app: Flask, admin) -> None:
    admin.post_form("/admin/users/invite", {"email": "r@acme.test", "role": "basic"})
    [user] = rows(User, email="r@acme.test")
    first = LINK_RE.search(rows(OutboxMessage)[-1].body_text).group(0)
    admin.post_form(f"/admin/users/{user.id}/invitation/resend")
    second = LINK_RE.search(rows(OutboxMessage)[-1].body_text).group(0)
    assert first != second
    client = host_client(app, "acme")
    assert client.get(first.removeprefix("http://acme.localhost")).status_code == 404
    assert client.get(second.removeprefix("http://acme.localhost")).status_code == 200
    admin.post_form(f"/admin/users/{user.id}/invitation/revoke")
    assert rows(User, email="r@acme.test") == []
    assert rows(ActionToken) == []
    assert client.get(second.removeprefix("http://acme.localhost")).status_code == 404
    assert "invitation.revoke" in [e.action for e in rows(AuditEvent)]


def test_deactivation_kills_live_sessions_on_next_request(app: Flask, admin, acme_user) -> None:
    victim = logged_in(app, acme_user)
    assert victim.get("/").status_code == 200
    response = admin.post_form(f"/admin/users/{acme_user.id}/deactivate")
    assert response.status_code == 302
    assert victim.get("/").status_code == 302  # the very next request
    assert all(s.revoked_at is not None for s in rows(UserSession, user_id=acme_user.id))
    assert victim.login("alice@acme.test").status_code == 403  # "This account has been deactivated"
    admin.post_form(f"/admin/users/{acme_user.id}/reactivate")
    assert rows(User, id=acme_user.id)[0].status == UserStatus.ACTIVE
    assert victim.login("alice@acme.test").status_code == 302


def test_admin_cannot_deactivate_self(admin, acme_admin) -> None:
    response = admin.post_form(f"/admin/users/{acme_admin.id}/deactivate")
    assert "cannot deactivate your own account" in admin.get(response.headers["Location"]).text
    assert rows(User, id=acme_admin.id)[0].status == UserStatus.ACTIVE


def test_support_capability(admin, acme_user, acme_admin) -> None:
    admin.post_form(f"/admin/users/{acme_user.id}/support", {"enabled": "1"})
    assert rows(User, id=acme_user.id)[0].is_support is True
    admin.post_form(f"/admin/users/{acme_user.id}/support", {"enabled": "0"})
    assert rows(User, id=acme_user.id)[0].is_support is False
    actions = [e.action for e in rows(AuditEvent)]
    assert "user.support_grant" in actions and "user.support_remove" in actions


def test_promotion_to_admin_ends_the_support_capability(admin, acme_user) -> None:
    admin.post_form(f"/admin/users/{acme_user.id}/support", {"enabled": "1"})
    assert rows(User, id=acme_user.id)[0].is_support is True
    response = admin.post_form(f"/admin/users/{acme_user.id}/role", {"role": "admin"})
    assert response.status_code == 302
    page = admin.get(response.headers["Location"]).text
    assert "alice@acme.test now has the role Admin." in page
    assert "support agent" not in page  # neither the badge nor the button
    [user] = rows(User, id=acme_user.id)
    assert (user.role, user.is_support) == (Role.ADMIN, False)
    [event] = rows(AuditEvent, action="user.role_change")
    assert event.details == {"from": "basic", "to": "admin", "support_removed": True}
    # Stepping down again does not bring the capability back.
    admin.post_form(f"/admin/users/{acme_user.id}/role", {"role": "company"})
    assert rows(User, id=acme_user.id)[0].is_support is False


def test_promotion_of_a_non_agent_records_no_support_change(admin, acme_user) -> None:
    admin.post_form(f"/admin/users/{acme_user.id}/role", {"role": "admin"})
    [event] = rows(AuditEvent, action="user.role_change")
    assert event.details == {"from": "basic", "to": "admin"}


def test_bulk_actions_report_each_row(admin, people, acme_admin, globex_user) -> None:
    ids = [people[0].id, people[1].id, acme_admin.id, globex_user.id]
    response = admin.post_form("/admin/users/bulk", {"action": "deactivate", "user_ids": ids})
    assert response.status_code == 200
    assert "2 of 4 done" in response.text
    assert "cannot deactivate your own account" in response.text
    assert "No such user." in response.text and "gus@globex.test" not in response.text
    assert {u.id for u in rows(User, status=UserStatus.DEACTIVATED)} == {people[0].id, people[1].id}
    assert rows(User, id=globex_user.id)[0].status == UserStatus.ACTIVE

    response = admin.post_form(
        "/admin/users/bulk",
        {"action": "role", "role": "basic", "user_ids": [people[2].id, people[3].id]},
    )
    # guest -> basic is allowed; basic -> basic is not a change.
    assert "1 of 2 done" in response.text and "already has the role" in response.text
    assert rows(User, id=people[2].id)[0].role == Role.BASIC

    empty = admin.post_form("/admin/users/bulk", {"action": "deactivate"})
    assert empty.status_code == 422 and "Select at least one user." in empty.text
    nonsense = admin.post_form("/admin/users/bulk", {"action": "explode", "user_ids": ids})
    assert nonsense.status_code == 422


def test_admin_sends_a_password_reset(app: Flask, admin, acme_user) -> None:
    response = admin.post_form(f"/admin/users/{acme_user.id}/password-reset")
    page = admin.get(response.headers["Location"]).text
    assert "A password reset link was sent to alice@acme.test." in page
    [mail] = rows(OutboxMessage, to_address="alice@acme.test")
    assert "/password/reset/" in mail.body_text
    assert "account.password_reset_send" in [e.action for e in rows(AuditEvent)]
    admin.post_form(f"/admin/users/{acme_user.id}/deactivate")
    refused = admin.post_form(f"/admin/users/{acme_user.id}/password-reset")
    assert "reactivate the account first" in admin.get(refused.headers["Location"]).text
    assert len(rows(OutboxMessage, to_address="alice@acme.test")) == 1
