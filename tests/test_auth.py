"""Password login, server-side sessions and cross-partner isolation of logins and cookies."""

from __future__ import annotations

import re

from conftest import PASSWORD, HostClient, host_client, make_user, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.operator.models import Operator
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.tokens.generation import hash_token
from portal.users.models import User, UserStatus

ERROR_RE = re.compile(r'<p class="form-error"[^>]*>([^<]*)</p>')


def auth_cookie(client: HostClient):
    return client.get_cookie("portal_auth", domain=client.host)


def test_login_creates_a_session_record_holding_only_the_token_hash(
    acme_client: HostClient, acme_user: User
) -> None:
    response = acme_client.login("alice@acme.test")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    cookie = auth_cookie(acme_client)
    assert cookie is not None
    [record] = rows(UserSession)
    assert record.token_hash == hash_token(cookie.value)
    assert cookie.value not in record.token_hash
    assert record.user_id == acme_user.id and record.partner_id == acme_user.partner_id
    assert record.revoked_at is None
    home = acme_client.get("/")
    assert home.status_code == 200
    assert "Welcome, Alice Acme" in home.text
    assert "Acme Corp" in home.text
    actions = [e.action for e in rows(AuditEvent, partner_id=acme_user.partner_id)]
    assert set(actions[-2:]) == {"auth.login", "session.start"}


def test_cookie_is_host_only_httponly_samesite(acme_client: HostClient, acme_user: User) -> None:
    response = acme_client.login("alice@acme.test")
    header = response.headers["Set-Cookie"]
    assert header.startswith("portal_auth=")
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Domain" not in header
    assert "Path=/" in header


def test_acme_cookie_authenticates_nobody_on_globex(
    app: Flask, acme_client: HostClient, acme_user: User, globex: Partner
) -> None:
    make_user(globex, "alice@acme.test")  # same email in globex, unrelated account
    acme_client.login("alice@acme.test")
    token = auth_cookie(acme_client).value
    globex_client = host_client(app, "globex")
    globex_client.set_cookie("portal_auth", token, domain="globex.localhost")
    page = globex_client.get("/")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login")
    # Nor on the root domain, where only operator sessions count.
    root = host_client(app, None)
    root.set_cookie("portal_auth", token, domain="localhost")
    assert root.get("/operator/").status_code == 302
    # The acme session itself is untouched and still works on acme.
    assert acme_client.get("/").status_code == 200


def test_shared_email_logs_into_each_partner_only_with_its_own_password(
    app: Flask, acme: Partner, globex: Partner
) -> None:
    make_user(acme, "shared@example.com", password="orchard-lantern-2026")
    make_user(globex, "shared@example.com", password="harbour-lantern-2026")
    acme_client, globex_client = host_client(app, "acme"), host_client(app, "globex")

    assert acme_client.login("shared@example.com", "harbour-lantern-2026").status_code == 422
    assert globex_client.login("shared@example.com", "orchard-lantern-2026").status_code == 422
    assert rows(UserSession) == []

    assert acme_client.login("shared@example.com", "orchard-lantern-2026").status_code == 302
    assert globex_client.login("shared@example.com", "harbour-lantern-2026").status_code == 302
    sessions = rows(UserSession)
    assert {s.partner_id for s in sessions} == {acme.id, globex.id}
    assert "Acme Corp" in acme_client.get("/").text
    assert "Globex" in globex_client.get("/").text


def test_logout_revokes_the_record_and_the_old_cookie_is_dead(
    app: Flask, acme_client: HostClient, acme_user: User
) -> None:
    acme_client.login("alice@acme.test")
    old_token = auth_cookie(acme_client).value
    page = acme_client.get("/")
    assert 'action="/logout"' in page.text
    response = acme_client.post_form("/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    [record] = rows(UserSession)
    assert record.revoked_at is not None and record.revoked_reason == "logout"
    assert auth_cookie(acme_client) is None
    # Replaying the copied cookie authenticates nobody.
    thief = host_client(app, "acme")
    thief.set_cookie("portal_auth", old_token, domain="acme.localhost")
    assert thief.get("/").status_code == 302
    assert "auth.logout" in [e.action for e in rows(AuditEvent)]


def test_each_login_issues_a_new_session(acme_client: HostClient, acme_user: User) -> None:
    acme_client.login("alice@acme.test")
    first = auth_cookie(acme_client).value
    acme_client.post_form("/logout")
    acme_client.login("alice@acme.test")
    second = auth_cookie(acme_client).value
    assert first != second
    records = rows(UserSession)
    assert len(records) == 2
    assert len({r.token_hash for r in records}) == 2


def test_planted_cookie_is_replaced_at_login(acme_client: HostClient, acme_user: User) -> None:
    acme_client.set_cookie("portal_auth", "attacker-chosen-value", domain="acme.localhost")
    acme_client.login("alice@acme.test")
    assert auth_cookie(acme_client).value != "attacker-chosen-value"
    assert rows(UserSession)[0].token_hash != hash_token("attacker-chosen-value")


def _login_error(client: HostClient, email: str, password: str) -> tuple[int, str]:
    response = client.login(email, password)
    match = ERROR_RE.search(response.text)
    assert match, response.text
    return response.status_code, match.group(1)


def test_login_errors_are_identical(
    acme_client: HostClient, acme_user: User, globex_user: User
) -> None:
    unknown = _login_error(acme_client, "nobody@acme.test", PASSWORD)
    wrong = _login_error(acme_client, "alice@acme.test", "wrong-password-here")
    other_partner = _login_error(acme_client, "gus@globex.test", PASSWORD)
    assert unknown == wrong == other_partner == (422, "Incorrect email or password.")
    assert rows(UserSession) == []
    failures = [e for e in rows(AuditEvent) if e.action == "auth.login_failed"]
    assert len(failures) == 3
    assert {e.partner_id for e in failures} == {acme_user.partner_id}


def test_deactivated_user_cannot_log_in_and_is_told_so_only_with_the_right_password(
    acme_client: HostClient, acme_user: User
) -> None:
    acme_user.status = UserStatus.DEACTIVATED
    db.session.commit()
    # Whoever knows the password learns the account is deactivated (and whom to ask) ...
    assert _login_error(acme_client, "alice@acme.test", PASSWORD) == (
        403,
        "This account has been deactivated. Ask your Acme Corp administrator if you need "
        "access again.",
    )
    # ... anyone else gets the answer an unknown address gets.
    assert _login_error(acme_client, "alice@acme.test", "wrong-password-here") == (
        422,
        "Incorrect email or password.",
    )
    assert rows(UserSession) == []


def test_email_is_case_insensitive(acme_client: HostClient, acme_user: User) -> None:
    assert acme_client.login("  ALICE@Acme.Test ").status_code == 302


def test_empty_fields_get_errors_in_place(acme_client: HostClient, acme: Partner) -> None:
    response = acme_client.login("", "")
    assert response.status_code == 422
    assert "Enter your email address." in response.text
    assert "Enter your password." in response.text


def test_login_without_csrf_token_is_refused(acme_client: HostClient, acme_user: User) -> None:
    response = acme_client.post("/login", data={"email": "alice@acme.test", "password": PASSWORD})
    assert response.status_code == 400
    assert "form has expired" in response.text
    assert rows(UserSession) == []


def test_next_redirect_stays_on_the_host(acme_client: HostClient, acme_user: User) -> None:
    token = acme_client.csrf_token()
    data = {"email": "alice@acme.test", "password": PASSWORD, "csrf_token": token}
    response = acme_client.post("/login?next=//evil.example/", data=data)
    assert response.headers["Location"] == "/"


def test_operator_logs_in_on_root_only(app: Flask, root: HostClient, acme: Partner) -> None:
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    assert root.get("/operator/").status_code == 302
    assert root.login("op@portal.test").status_code == 302
    console = root.get("/operator/")
    assert console.status_code == 200
    assert "Acme Corp" in console.text
    # An operator account is not a partner user.
    acme_client = host_client(app, "acme")
    assert acme_client.login("op@portal.test").status_code == 422
    assert root.post_form("/logout").status_code == 302
    assert root.get("/operator/").status_code == 302
