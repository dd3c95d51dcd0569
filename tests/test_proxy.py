"""X-Forwarded-* are believed only from the number of proxies PORTAL_PROXY_FIX names."""

from __future__ import annotations

from conftest import PASSWORD, HostClient, host_client, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.users.models import User


def sign_in(client: HostClient, user: User, forwarded_for: str) -> None:
    token = client.csrf_token()
    response = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-For": forwarded_for},
    )
    assert response.status_code == 302


def recorded_ips() -> tuple[str | None, str | None]:
    [session] = rows(UserSession)
    [login] = rows(AuditEvent, action="auth.login")
    return session.ip, login.ip


def test_without_a_trusted_proxy_forwarded_headers_change_nothing(
    app: Flask, acme: Partner, globex: Partner, acme_user: User
) -> None:
    client = host_client(app, "acme")
    page = client.get("/login", headers={"X-Forwarded-Host": "globex.localhost"})
    assert "Sign in to Acme Corp" in page.text and "Globex" not in page.text
    elsewhere = client.get("/login", headers={"X-Forwarded-Host": "evil.example"})
    assert elsewhere.status_code == 200 and "Sign in to Acme Corp" in elsewhere.text
    sign_in(client, acme_user, forwarded_for="203.0.113.7")
    assert recorded_ips() == ("127.0.0.1", "127.0.0.1")  # the address the request came from


def test_behind_one_trusted_proxy_its_headers_count(
    make_app, data: Flask, acme: Partner, globex: Partner, acme_user: User
) -> None:
    proxied = make_app(PROXY_FIX=1)
    client = host_client(proxied, "acme")
    page = client.get("/login", headers={"X-Forwarded-Host": "globex.localhost"})
    assert "Sign in to Globex" in page.text
    # A host outside the server name is refused, as if the client had sent it itself.
    assert client.get("/login", headers={"X-Forwarded-Host": "evil.example"}).status_code == 400
    # The client's own X-Forwarded-For comes first; the proxy appends the address it saw.
    sign_in(client, acme_user, forwarded_for="10.6.6.6, 203.0.113.7")
    assert recorded_ips() == ("203.0.113.7", "203.0.113.7")
