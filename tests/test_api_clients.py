"""/admin/api-clients: partner admins create clients, see the secret once, rotate and revoke."""

from __future__ import annotations

import re

from apikit import Api, api_client_for, get_token, token_response
from conftest import host_client, logged_in, make_user, rows, set_feature
from flask import Flask

from portal.api.models import ApiClient, digest
from portal.audit.models import AuditEvent
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User

SECRET_RE = re.compile(r"data-secret>([^<]+)</code>")


def test_off_until_the_partner_switches_the_api_on(app: Flask, acme: Partner, acme_admin: User):
    admin = logged_in(app, acme_admin)
    assert admin.get("/admin/api-clients/").status_code == 404
    assert "API clients" not in admin.get("/").text
    set_feature(acme, "api_access", True)
    assert admin.get("/admin/api-clients/").status_code == 200
    assert "API clients" in admin.get("/").text


def test_create_shows_the_secret_once_and_stores_its_hash(
    app: Flask, acme: Partner, acme_admin: User
):
    set_feature(acme, "api_access", True)
    admin = logged_in(app, acme_admin)
    page = admin.post_form(
        "/admin/api-clients/", {"name": "  ERP  sync ", "scopes": ["users:read", "audit:read"]}
    )
    assert page.status_code == 201
    secret = SECRET_RE.search(page.text).group(1)
    [client] = rows(ApiClient)
    assert client.name == "ERP sync" and client.scopes == ["users:read", "audit:read"]
    assert client.secret_hash == digest(secret) and secret not in client.secret_hash
    assert client.client_id in page.text
    assert secret not in admin.get("/admin/api-clients/").text
    [event] = [e for e in rows(AuditEvent) if e.action == "api_client.create"]
    assert event.actor_id == acme_admin.id and secret not in str(event.details)
    assert get_token(app, "acme", client.client_id, secret)


def test_bad_input_is_refused_in_place(app: Flask, acme: Partner, acme_admin: User):
    set_feature(acme, "api_access", True)
    admin = logged_in(app, acme_admin)
    none = admin.post_form("/admin/api-clients/", {"name": "ERP"})
    assert none.status_code == 422 and "at least one scope" in none.text
    unknown = admin.post_form("/admin/api-clients/", {"name": "ERP", "scopes": ["root:all"]})
    assert unknown.status_code == 422 and "Unknown scope" in unknown.text
    nameless = admin.post_form("/admin/api-clients/", {"name": " ", "scopes": ["users:read"]})
    assert nameless.status_code == 422 and "Enter a name" in nameless.text
    assert rows(ApiClient) == []
    no_csrf = admin.post("/admin/api-clients/", data={"name": "ERP", "scopes": ["users:read"]})
    assert no_csrf.status_code == 400
    assert rows(ApiClient) == []


def test_rotate_replaces_the_secret_and_ends_its_tokens(
    app: Flask, acme: Partner, acme_admin: User
):
    client_id, old, row_id = api_client_for(acme, acme_admin)
    api = Api(app, "acme", get_token(app, "acme", client_id, old))
    admin = logged_in(app, acme_admin)
    page = admin.post_form(f"/admin/api-clients/{row_id}/rotate")
    assert page.status_code == 200 and "stopped working" in page.text
    new = SECRET_RE.search(page.text).group(1)
    assert new != old
    assert token_response(host_client(app, "acme"), client_id, old).status_code == 401
    assert api.get("/users").status_code == 401
    assert get_token(app, "acme", client_id, new)
    assert "api_client.rotate_secret" in [e.action for e in rows(AuditEvent)]


def test_another_partners_client_is_missing(
    app: Flask, acme: Partner, globex: Partner, acme_admin: User
):
    g_admin = make_user(globex, "admin@globex.test", role=Role.ADMIN)
    _, _, foreign = api_client_for(globex, g_admin)
    set_feature(acme, "api_access", True)
    admin = logged_in(app, acme_admin)
    before = [(c.secret_hash, c.revoked_at) for c in rows(ApiClient)]
    assert admin.post_form(f"/admin/api-clients/{foreign}/rotate").status_code == 404
    assert admin.post_form(f"/admin/api-clients/{foreign}/revoke").status_code == 404
    assert [(c.secret_hash, c.revoked_at) for c in rows(ApiClient)] == before
    assert "Back office" not in admin.get("/admin/api-clients/").text


def test_only_those_who_manage_settings(app: Flask, acme: Partner, acme_admin: User):
    set_feature(acme, "api_access", True)
    company = logged_in(app, make_user(acme, "c@acme.test", role=Role.COMPANY))
    assert company.get("/admin/api-clients/").status_code == 403
    refused = company.post_form("/admin/api-clients/", {"name": "x", "scopes": ["users:read"]})
    assert refused.status_code == 403
    assert rows(ApiClient) == []


def test_revoked_client_is_listed_as_revoked(app: Flask, acme: Partner, acme_admin: User):
    _, _, row_id = api_client_for(acme, acme_admin)
    admin = logged_in(app, acme_admin)
    page = admin.post_form(f"/admin/api-clients/{row_id}/revoke", follow_redirects=True)
    assert "revoked: its secret and tokens no longer work" in page.text
    assert "Rotate secret" not in page.text
    again = admin.post_form(f"/admin/api-clients/{row_id}/revoke", follow_redirects=True)
    assert "was revoked" in again.text
    assert [e.action for e in rows(AuditEvent)].count("api_client.revoke") == 1
