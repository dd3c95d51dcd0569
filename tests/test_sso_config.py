"""Single sign-on configuration: secret encryption and key rotation, outbound address rules,
the development-only demo provider, and the seeded demo connection."""

from __future__ import annotations

import json
import stat
import threading
from typing import Any

import pytest
from conftest import host_client, rows
from cryptography.fernet import Fernet
from flask import Flask
from oidc import ALICE, ProviderServer, configure, sign_in
from racing import WAIT

from portal.config import ConfigError
from portal.sso import demo_provider
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


def test_the_demo_providers_key_is_made_once_and_kept(make_app, data: Flask, tmp_path) -> None:
    """A restart publishes the same key set, so keys and ID tokens the portal holds stay good."""
    key_file = tmp_path / "instance" / "demo_idp_key.json"
    key_sets = []
    for _start in range(2):
        app = make_app(fresh=True, PORTAL_ENV="development", DEMO_IDP_KEY_FILE=str(key_file))
        answer = app.test_client().get("http://localhost/dev/idp/jwks")
        assert answer.status_code == 200
        key_sets.append(answer.json)
    assert key_sets[0] == key_sets[1]
    [published] = key_sets[0]["keys"]
    assert published["kid"] == "demo-1" and "d" not in published  # the public half only
    kept = json.loads(key_file.read_text())
    assert {k: kept[k] for k in published} == published and "d" in kept
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == [key_file.name]


def test_two_first_starts_at_once_keep_one_key(tmp_path, monkeypatch) -> None:
    """Two workers start on a fresh installation together: both find no key and make one; the
    second keeps going only once the first is using its key. Both end up with the one kept."""
    key_file = tmp_path / "demo_idp_key.json"
    both_made_one = threading.Barrier(2, timeout=WAIT)
    first_uses_it = threading.Event()
    made = demo_provider.new_signing_key

    def make_then_wait() -> Any:
        key = made()
        both_made_one.wait()  # each has passed its look for a kept key, each holds its own
        if threading.current_thread() is threads[1]:
            assert first_uses_it.wait(WAIT)
        return key

    monkeypatch.setattr(demo_provider, "new_signing_key", make_then_wait)
    used: list[Any] = [None, None]

    def start(index: int) -> None:
        try:
            used[index] = demo_provider.stable_signing_key(key_file).as_dict(private=False)
        finally:
            first_uses_it.set()

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert None not in used, "a start failed"
    kept = json.loads(key_file.read_text())
    assert used[0] == used[1] == {k: kept[k] for k in used[0]}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [key_file.name]  # no candidate left behind

    key_file.write_text("{}")
    with pytest.raises(RuntimeError, match="delete it, and a new key is made on the next start"):
        demo_provider.stable_signing_key(key_file)


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
