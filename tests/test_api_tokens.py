"""POST /oauth/token and bearer tokens: issued per partner, refused everywhere else."""

from __future__ import annotations

from datetime import timedelta

from apikit import Api, api_client_for, bearer, error_code, get_token, token_response
from conftest import host_client, make_user, rows, set_feature
from flask import Flask

from portal.api.models import ApiToken, digest
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User
from portal.users.services import deactivate_user


def test_token_is_issued_stored_hashed_and_works(app: Flask, acme: Partner, acme_admin: User):
    client_id, secret, _ = api_client_for(acme, acme_admin)
    response = token_response(host_client(app, "acme"), client_id, secret)
    assert response.status_code == 200
    body = response.json
    assert body["token_type"].lower() == "bearer" and body["expires_in"] == 3600
    assert response.headers["Cache-Control"] == "no-store"
    [stored] = rows(ApiToken)
    assert stored.token_hash == digest(body["access_token"]) != body["access_token"]
    answer = Api(app, "acme", body["access_token"]).get("/users")
    assert answer.status_code == 200
    assert [u["email"] for u in answer.json["data"]] == ["root@acme.test"]
    assert "api_token.issue" in [e.action for e in rows(AuditEvent)]


def test_wrong_secret_is_refused(app: Flask, acme: Partner, acme_admin: User):
    client_id, _secret, _ = api_client_for(acme, acme_admin)
    response = token_response(host_client(app, "acme"), client_id, "not-the-secret")
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert rows(ApiToken) == []


def test_client_of_another_partner_is_unknown(
    app: Flask, acme: Partner, globex: Partner, acme_admin: User
):
    client_id, secret, _ = api_client_for(acme, acme_admin)
    set_feature(globex, "api_access", True)
    response = token_response(host_client(app, "globex"), client_id, secret)
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    assert rows(ApiToken) == []


def test_token_endpoint_does_not_exist_on_the_root_domain_or_with_the_feature_off(
    app: Flask, acme: Partner, acme_admin: User
):
    client_id, secret, _ = api_client_for(acme, acme_admin)
    assert token_response(host_client(app, None), client_id, secret).status_code == 404
    set_feature(acme, "api_access", False)
    response = token_response(host_client(app, "acme"), client_id, secret)
    assert response.status_code == 404
    assert rows(ApiToken) == []


def test_acme_token_is_refused_on_globex_and_on_the_root_domain(
    app: Flask, acme: Partner, globex: Partner, acme_admin: User
):
    make_user(globex, "someone@globex.test")
    set_feature(globex, "api_access", True)
    client_id, secret, _ = api_client_for(acme, acme_admin)
    token = get_token(app, "acme", client_id, secret)
    on_globex = Api(app, "globex", token).get("/users")
    assert on_globex.status_code == 401 and error_code(on_globex) == "unauthorized"
    assert "invalid_token" in on_globex.headers["WWW-Authenticate"]
    on_root = host_client(app, None).get("/api/v1/users", headers=bearer(token))
    assert on_root.status_code == 404
    assert "someone@globex.test" not in on_root.text


def test_revoked_client_loses_its_tokens_and_gets_no_new_ones(
    app: Flask, acme: Partner, acme_admin: User
):
    client_id, secret, row_id = api_client_for(acme, acme_admin)
    token = get_token(app, "acme", client_id, secret)
    admin = host_client(app, "acme")
    admin.login("root@acme.test")
    page = admin.post_form(f"/admin/api-clients/{row_id}/revoke", follow_redirects=True)
    assert "revoked" in page.text
    refused = Api(app, "acme", token).get("/users")
    assert refused.status_code == 401 and error_code(refused) == "unauthorized"
    again = token_response(host_client(app, "acme"), client_id, secret)
    assert again.status_code == 401 and again.json["error"] == "invalid_client"


def test_expired_token_is_refused(app: Flask, acme: Partner, acme_admin: User, frozen_clock):
    client_id, secret, _ = api_client_for(acme, acme_admin)
    api = Api(app, "acme", get_token(app, "acme", client_id, secret))
    frozen_clock.advance(timedelta(seconds=3599))
    assert api.get("/users").status_code == 200
    frozen_clock.advance(timedelta(seconds=1))
    expired = api.get("/users")
    assert expired.status_code == 401 and error_code(expired) == "unauthorized"


def test_missing_and_malformed_authorization(app: Flask, acme: Partner, acme_admin: User):
    api_client_for(acme, acme_admin)
    http = host_client(app, "acme")
    missing = http.get("/api/v1/users")
    assert missing.status_code == 401 and error_code(missing) == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    made_up = http.get("/api/v1/users", headers=bearer("x" * 42))
    assert made_up.status_code == 401


def test_cookie_session_is_no_api_credential(app: Flask, acme: Partner, acme_admin: User):
    api_client_for(acme, acme_admin)
    admin = host_client(app, "acme")
    admin.login("root@acme.test")
    assert admin.get("/api/v1/users").status_code == 401
    assert (
        admin.post("/api/v1/users", json={"email": "x@acme.test", "role": "basic"}).status_code
        == 401
    )
    assert [u.email for u in rows(User)] == ["root@acme.test"]


def test_scope_is_enforced_and_narrowed_on_request(app: Flask, acme: Partner, acme_admin: User):
    client_id, secret, _ = api_client_for(acme, acme_admin, ["users:read", "audit:read"])
    narrow = Api(app, "acme", get_token(app, "acme", client_id, secret, scope="users:read"))
    assert narrow.get("/users").status_code == 200
    refused = narrow.get("/audit-events")
    assert refused.status_code == 403 and error_code(refused) == "insufficient_scope"
    write = narrow.post("/users", {"email": "new@acme.test", "role": "basic"})
    assert write.status_code == 403 and error_code(write) == "insufficient_scope"
    assert [u.email for u in rows(User)] == ["root@acme.test"]
    # A scope the client does not hold is not granted.
    beyond = token_response(host_client(app, "acme"), client_id, secret, scope="users:write")
    assert beyond.status_code == 400 and beyond.json["error"] == "invalid_scope"


def test_client_stops_when_its_admin_can_no_longer_manage_clients(
    app: Flask, acme: Partner, acme_admin: User
):
    other = make_user(acme, "second@acme.test", role=Role.ADMIN)
    client_id, secret, _ = api_client_for(acme, other)
    api = Api(app, "acme", get_token(app, "acme", client_id, secret))
    with partner_scope(acme):
        deactivate_user(db.session.get(User, acme_admin.id), db.session.get(User, other.id))
        db.session.commit()
    refused = api.get("/users")
    assert refused.status_code == 403 and error_code(refused) == "forbidden"


def test_wrong_secrets_are_throttled_per_address_on_the_host(
    app: Flask, acme: Partner, acme_admin: User
):
    client_id, secret, _ = api_client_for(acme, acme_admin)
    browser = host_client(app, "acme")
    answers = [token_response(browser, client_id, f"guess-{i}").status_code for i in range(31)]
    assert answers == [401] * 30 + [429]
    # Now even the right secret waits; nothing was issued.
    refused = token_response(browser, client_id, secret)
    assert refused.status_code == 429 and refused.json["error"] == "slow_down"
    assert int(refused.headers["Retry-After"]) == 300
    assert rows(ApiToken) == []
