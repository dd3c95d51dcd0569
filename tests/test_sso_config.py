"""Single sign-on configuration: secret encryption and key rotation, outbound address rules,
the development-only demo provider, and the seeded demo connection."""

from __future__ import annotations

import pytest
from conftest import host_client, rows
from cryptography.fernet import Fernet
from flask import Flask
from oidc import ALICE, ProviderServer, configure, sign_in

from portal.config import ConfigError
from portal.sso.crypto import derived_key, key_id
from portal.sso.http import AddressRefused, check_address
from portal.sso.models import SsoConnection
from portal.tenancy.models import Partner
from portal.users.models import User

NEW_KEY = Fernet.generate_key().decode()


def test_secrets_rotate_to_a_dedicated_key_and_an_unreadable_one_is_named(
    make_app, data: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer)
    [connection] = rows(SsoConnection)
    assert connection.client_secret_key_id == key_id(derived_key(data.config["SECRET_KEY"]))

    rotated = make_app(fresh=True, SSO_KEYS=NEW_KEY)
    # Before the rotation the derived key still decrypts: sign-in goes on.
    assert sign_in(host_client(rotated, "acme"), ALICE).status_code == 302
    result = rotated.test_cli_runner().invoke(args=["sso", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted: acme" in result.output
    [connection] = rows(SsoConnection)
    assert connection.client_secret_key_id == key_id(NEW_KEY.encode())
    assert sign_in(host_client(rotated, "acme"), ALICE).status_code == 302
    again = rotated.test_cli_runner().invoke(args=["sso", "rotate-keys"])
    assert "Already current: acme" in again.output

    # A deployment without that key (and another secret key) cannot read it: it says so.
    lost = make_app(fresh=True, SECRET_KEY="another-secret-key-Xq7_pL2mN9vB4cR8tY1wZ5")
    client = host_client(lost, "acme")
    response = client.post("/sso/start", data={"csrf_token": client.csrf_token("/login")})
    assert response.status_code == 503
    assert "enter the client secret again" in response.text
    output = lost.test_cli_runner().invoke(args=["sso", "rotate-keys"]).output
    assert "Unreadable with the configured keys" in output and "acme" in output


def test_a_key_that_is_not_a_fernet_key_stops_start_up(make_app) -> None:
    with pytest.raises(ConfigError, match="PORTAL_SSO_KEYS: key 1 is not a Fernet key"):
        make_app(fresh=True, SSO_KEYS="not-a-key")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://login.example.com", "over https"),
        ("https://127.0.0.1/issuer", "private or reserved address"),
        ("https://10.0.0.8", "private or reserved address"),
        ("https://[::1]/x", "private or reserved address"),
        ("https://169.254.169.254/latest", "private or reserved address"),
        ("https://user:pw@login.example.com", "user name or password"),
        ("ftp://login.example.com", "not a web address"),
        ("https://localhost/x", "private or reserved address"),
    ],
)
def test_production_calls_only_public_https_providers(make_app, url: str, problem: str) -> None:
    app = make_app(OIDC_ALLOW_PRIVATE=False)
    with app.app_context(), pytest.raises(AddressRefused, match=problem):
        check_address(url)


def test_an_address_refused_in_production_is_a_field_error(
    make_app, data: Flask, acme: Partner, acme_admin: User
) -> None:
    app = make_app(OIDC_ALLOW_PRIVATE=False)
    from conftest import logged_in

    admin = logged_in(app, acme_admin)
    response = admin.post_form(
        "/admin/settings/login/",
        {
            "discovery_url": "http://127.0.0.1:8080/realms/acme",
            "client_id": "portal",
            "client_secret": "s" * 20,
            "scopes": "openid",
            "provision_role": "basic",
            "password_on": "y",
        },
    )
    assert response.status_code == 422
    assert 'id="discovery_url-error"' in response.text and "over https" in response.text
    assert rows(SsoConnection) == []


def test_the_demo_provider_exists_in_development_only(make_app, data: Flask) -> None:
    development = make_app(fresh=True, PORTAL_ENV="development")
    assert "portal_demo_idp" in development.extensions
    client = development.test_client()
    found = client.get("http://localhost/dev/idp/.well-known/openid-configuration")
    assert found.status_code == 200
    assert found.json["issuer"] == "http://127.0.0.1:80/dev/idp"
    remote = client.get(
        "http://localhost/dev/idp/.well-known/openid-configuration",
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert remote.status_code == 404  # a development server on a network shows nobody else

    for app in (make_app(), make_app(fresh=True, PORTAL_ENV="production", DEMO_IDP=True)):
        assert "portal_demo_idp" not in app.extensions
        answer = app.test_client().get("http://localhost/dev/idp/.well-known/openid-configuration")
        assert answer.status_code == 404


def test_the_seed_connects_acme_to_the_demo_provider(make_app, data: Flask) -> None:
    development = make_app(fresh=True, PORTAL_ENV="development", SERVER_NAME="localhost:5092")
    assert development.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    [connection] = rows(SsoConnection)
    assert connection.discovery_url == "http://127.0.0.1:5092/dev/idp"
    assert connection.ready and connection.auto_provision and connection.link_by_email
    assert connection.allowed_domains == ["acme.test"]
    acme = next(p for p in rows(Partner) if p.slug == "acme")
    assert connection.partner_id == acme.id
    elsewhere = make_app(fresh=True, PORTAL_ENV="development", SERVER_NAME="localhost:6001")
    assert elsewhere.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    [connection] = rows(SsoConnection)
    assert connection.discovery_url == connection.issuer == "http://127.0.0.1:6001/dev/idp"
