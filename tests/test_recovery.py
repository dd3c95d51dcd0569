"""Password reset: forgot-password requests, reset links, and admin-sent resets."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import PASSWORD, HostClient, host_client, make_user, rows
from flask import Flask
from mailed import last_mail, mailed_link, mails_to, token_of

from portal.account import services
from portal.audit.models import AuditEvent
from portal.auth.passwords import verify_password
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.tokens.models import ActionToken, TokenPurpose
from portal.users.models import User, UserStatus

NEW_PASSWORD = "a-brand-new-passphrase"
INVALID = "This link is invalid or has expired"


def ask_for_reset(client: HostClient, email: str):
    return client.post_form("/password/forgot", {"email": email})


def reset_path(client: HostClient, email: str = "alice@acme.test") -> str:
    response = ask_for_reset(client, email)
    assert response.status_code == 302
    return mailed_link(email, "/password/reset/", host=client.host)


def set_password(client: HostClient, path: str, password: str = NEW_PASSWORD, confirm=None):
    return client.post_form(path, {"password": password, "confirm": confirm or password})


def stored(user: User) -> User:
    [row] = rows(User, id=user.id)
    return row


def actions(partner: Partner) -> list[str]:
    return [e.action for e in rows(AuditEvent, partner_id=partner.id)]


# --- Asking for a link ------------------------------------------------------------------------


def test_forgot_page_is_linked_from_the_login_page(acme_client: HostClient, acme: Partner) -> None:
    login = acme_client.get("/login")
    assert 'href="/password/forgot"' in login.text
    page = acme_client.get("/password/forgot")
    assert page.status_code == 200
    assert "Forgot your password?" in page.text
    assert 'name="email"' in page.text and 'name="csrf_token"' in page.text


def test_active_user_gets_a_link_to_their_own_partner_host(
    acme_client: HostClient, acme_user: User
) -> None:
    response = ask_for_reset(acme_client, "  Alice@ACME.test ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/password/forgot?sent=1"
    page = acme_client.get(response.headers["Location"])
    assert "Check your email" in page.text
    message = last_mail("alice@acme.test")
    assert message.partner_id == acme_user.partner_id
    assert message.subject == "Reset your password · Acme Corp"
    path = mailed_link("alice@acme.test", "/password/reset/")
    [token] = rows(ActionToken, purpose=TokenPurpose.PASSWORD_RESET)
    assert token.user_id == acme_user.id and token.used_at is None
    assert token.token_hash != token_of(path)  # only the hash is stored
    assert token.expires_at - token.created_at == timedelta(hours=1)
    assert "for 1 hour" in message.body_text
    assert "account.password_reset_request" in actions(acme_user.partner)


CSRF_TOKEN = re.compile(r'(?<="X-CSRFToken": ")[^"]+|(?<=name="csrf_token" value=")[^"]+')


def test_the_answer_is_the_same_whoever_asks(
    app: Flask, acme: Partner, acme_user: User, globex_user: User
) -> None:
    make_user(acme, "gone@acme.test", status=UserStatus.DEACTIVATED)
    make_user(acme, "pending@acme.test", status=UserStatus.INVITED, password=None)
    client = host_client(app, "acme")
    answers = set()
    for email in (
        "alice@acme.test",
        "nobody@acme.test",
        "gus@globex.test",
        "gone@acme.test",
        "pending@acme.test",
    ):
        response = ask_for_reset(client, email)
        page = client.get(response.headers["Location"])
        # CSRF tokens carry a timestamp (a new one each second); everything else must match.
        text = CSRF_TOKEN.sub("csrf", page.text)
        answers.add((response.status_code, response.headers["Location"], text))
    assert len(answers) == 1
    # Only the active acme user was written to; deactivated and invited users get nothing.
    assert [m.to_address for m in rows(OutboxMessage)] == ["alice@acme.test"]
    assert len(rows(ActionToken)) == 1


def test_invalid_address_is_an_error_in_place(acme_client: HostClient, acme: Partner) -> None:
    response = ask_for_reset(acme_client, "not an address")
    assert response.status_code == 422
    assert "Enter a valid email address" in response.text
    assert 'aria-invalid="true"' in response.text
    empty = ask_for_reset(acme_client, "")
    assert empty.status_code == 422
    assert "Enter an email address." in empty.text
    assert rows(OutboxMessage) == [] and rows(ActionToken) == []


def test_asking_twice_within_a_minute_sends_one_link(
    acme_client: HostClient, acme_user: User, frozen_clock
) -> None:
    first = reset_path(acme_client)
    ask_for_reset(acme_client, "alice@acme.test")
    assert len(mails_to("alice@acme.test")) == 1
    frozen_clock.advance(timedelta(minutes=2))
    second = reset_path(acme_client)
    assert first != second
    assert len(mails_to("alice@acme.test")) == 2
    # The newer link replaces the older one.
    assert INVALID in acme_client.get(first).text
    assert acme_client.get(second).status_code == 200


# --- Using the link ---------------------------------------------------------------------------


def test_reset_sets_the_password_and_ends_every_session(
    app: Flask, acme_client: HostClient, acme_user: User
) -> None:
    laptop, phone = host_client(app, "acme"), host_client(app, "acme")
    laptop.login("alice@acme.test")
    phone.login("alice@acme.test")
    old_cookie = laptop.get_cookie("portal_auth", domain="acme.localhost").value
    path = reset_path(acme_client)

    form = acme_client.get(path)
    assert form.status_code == 200
    assert "Choose a new password" in form.text
    assert form.headers["Referrer-Policy"] == "no-referrer"

    response = set_password(acme_client, path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "Your password has been changed" in acme_client.get("/login").text

    user = stored(acme_user)
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert not verify_password(user.password_hash, PASSWORD)
    sessions = rows(UserSession, user_id=acme_user.id)
    assert len(sessions) == 2
    assert all(s.revoked_reason == "password reset" for s in sessions)
    # The cookies of both devices are dead; a copy of one authenticates nobody.
    assert laptop.get("/").status_code == 302
    assert phone.get("/").status_code == 302
    thief = host_client(app, "acme")
    thief.set_cookie("portal_auth", old_cookie, domain="acme.localhost")
    assert thief.get("/").status_code == 302
    # The new password works, the old one does not.
    assert acme_client.login("alice@acme.test", PASSWORD).status_code == 422
    assert acme_client.login("alice@acme.test", NEW_PASSWORD).status_code == 302
    events = actions(acme_user.partner)
    assert "account.password_reset" in events and "session.revoke_all" in events


def test_a_common_password_or_ones_own_name_is_refused_and_the_link_stays_usable(
    acme_client: HostClient, acme_user: User
) -> None:
    path = reset_path(acme_client)
    weak_ones = (("password2026", "one of the most common"), ("alice-again-99", "not contain"))
    for weak, says in weak_ones:
        refused = set_password(acme_client, path, weak)
        assert refused.status_code == 422 and says in refused.text, weak
    assert verify_password(stored(acme_user).password_hash, PASSWORD)
    assert set_password(acme_client, path).status_code == 302
    assert verify_password(stored(acme_user).password_hash, NEW_PASSWORD)


def test_reset_link_works_once(acme_client: HostClient, acme_user: User) -> None:
    path = reset_path(acme_client)
    assert set_password(acme_client, path).status_code == 302
    again = set_password(acme_client, path, "yet-another-passphrase")
    assert again.status_code == 404
    assert INVALID in again.text
    assert 'href="/password/forgot"' in again.text
    assert acme_client.get(path).status_code == 404
    assert verify_password(stored(acme_user).password_hash, NEW_PASSWORD)
    [token] = rows(ActionToken)
    assert token.used_at is not None


def test_reset_link_expires_after_an_hour(
    acme_client: HostClient, acme_user: User, frozen_clock
) -> None:
    path = reset_path(acme_client)
    frozen_clock.advance(timedelta(minutes=59))
    assert acme_client.get(path).status_code == 200
    frozen_clock.advance(timedelta(minutes=1))
    expired = set_password(acme_client, path)
    assert expired.status_code == 404
    assert INVALID in expired.text
    assert verify_password(stored(acme_user).password_hash, PASSWORD)
    assert rows(ActionToken)[0].used_at is None


def test_reset_link_is_invalid_on_another_partners_host(
    app: Flask, acme_client: HostClient, acme_user: User, globex: Partner
) -> None:
    make_user(globex, "alice@acme.test")  # same address in globex, unrelated account
    path = reset_path(acme_client)
    globex_client = host_client(app, "globex")
    page = globex_client.get(path)
    assert page.status_code == 404
    assert INVALID in page.text
    assert set_password(globex_client, path).status_code == 404
    # Nothing changed anywhere, and the link still works where it belongs.
    assert all(verify_password(u.password_hash, PASSWORD) for u in rows(User))
    assert rows(ActionToken)[0].used_at is None
    assert set_password(acme_client, path).status_code == 302


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t + "x",
        lambda t: t[:10],
        lambda t: "%00" + t,
    ],
)
def test_tampered_reset_link_is_invalid(acme_client: HostClient, acme_user: User, tamper) -> None:
    path = reset_path(acme_client)
    bad = "/password/reset/" + tamper(token_of(path))
    assert acme_client.get(bad).status_code == 404
    response = set_password(acme_client, bad)
    assert response.status_code == 404
    assert INVALID in response.text
    assert rows(ActionToken)[0].used_at is None


def test_bad_new_password_is_an_error_in_place(acme_client: HostClient, acme_user: User) -> None:
    path = reset_path(acme_client)
    short = set_password(acme_client, path, "short")
    assert short.status_code == 422
    assert "Use at least 10 characters." in short.text
    differ = set_password(acme_client, path, NEW_PASSWORD, "something-else-entirely")
    assert differ.status_code == 422
    assert "The two passwords are not the same." in differ.text
    assert verify_password(stored(acme_user).password_hash, PASSWORD)
    assert rows(ActionToken)[0].used_at is None
    assert rows(UserSession) == []


def test_link_of_a_user_deactivated_since_is_invalid(
    acme_client: HostClient, acme_user: User, acme: Partner
) -> None:
    path = reset_path(acme_client)
    with partner_scope(acme):
        db.session.get(User, acme_user.id).status = UserStatus.DEACTIVATED
        db.session.commit()
    assert acme_client.get(path).status_code == 404
    assert set_password(acme_client, path).status_code == 404
    assert verify_password(stored(acme_user).password_hash, PASSWORD)


# --- Admin-sent resets ------------------------------------------------------------------------


def test_admin_sends_a_reset_link(acme_client: HostClient, acme: Partner, acme_user: User) -> None:
    admin = make_user(acme, "root@acme.test", role=Role.ADMIN, display_name="Ada Admin")
    with partner_scope(acme):
        services.send_password_reset(
            db.session.get(User, acme_user.id), by=db.session.get(User, admin.id)
        )
        db.session.commit()
    message = last_mail("alice@acme.test")
    assert "Ada Admin, an administrator of Acme Corp" in message.body_text
    path = mailed_link("alice@acme.test", "/password/reset/")
    [token] = rows(ActionToken)
    assert token.created_by_id == admin.id
    [event] = rows(AuditEvent, action="account.password_reset_send")
    assert event.actor_id == admin.id and event.target_id == str(acme_user.id)
    # Until the link is used, the old password still works.
    assert verify_password(stored(acme_user).password_hash, PASSWORD)
    assert set_password(acme_client, path).status_code == 302
    assert verify_password(stored(acme_user).password_hash, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("status", "message"),
    [(UserStatus.DEACTIVATED, "is deactivated"), (UserStatus.INVITED, "has not activated")],
)
def test_admin_reset_refused_for_users_who_cannot_sign_in(
    acme: Partner, status: UserStatus, message: str
) -> None:
    admin = make_user(acme, "root@acme.test", role=Role.ADMIN)
    user = make_user(acme, "bob@acme.test", status=status)
    with partner_scope(acme), pytest.raises(services.AccountError, match=message):
        services.send_password_reset(
            db.session.get(User, user.id), by=db.session.get(User, admin.id)
        )
    db.session.rollback()
    assert rows(OutboxMessage) == [] and rows(ActionToken) == []
