"""Single sign-on configuration: secret encryption and key rotation, outbound address rules,
the development-only demo provider, and the seeded demo connection."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import urllib3
from conftest import host_client, logged_in, rows
from cryptography.fernet import Fernet
from flask import Flask, g
from oidc import ACME_CLIENT, ALICE, ProviderServer, configure, sign_in
from racing import WAIT

from portal.config import ConfigError
from portal.extensions import db
from portal.sso import demo_provider
from portal.sso.crypto import derived_key, key_id
from portal.sso.http import (
    AddressRefused,
    ProviderSession,
    ProviderUnavailable,
    check_address,
    start_budget,
)
from portal.sso.models import SsoConnection
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
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


SLOW_HOST = "slow-dns.example.com"
SLOW_PROVIDER = f"https://{SLOW_HOST}/realms/acme"


@dataclass
class SlowDns:
    """A resolver that takes SLOW_HOST's lookup and answers only once the test lets it."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    lookups: int = 0


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowDns]:
    dns = SlowDns()
    real = socket.getaddrinfo

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != SLOW_HOST:
            return real(host, *args, **kwargs)
        dns.lookups += 1
        dns.entered.set()
        try:
            assert dns.release.wait(WAIT), "the test never released the lookup"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]
        finally:
            dns.finished.set()

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    yield dns
    dns.release.set()
    # A lookup still running when the request gave up ends once released, on its own thread.
    assert not dns.entered.is_set() or dns.finished.wait(WAIT)


def slow_dns_app(make_app) -> Flask:
    return make_app(OIDC_ALLOW_PRIVATE=False, OIDC_TIMEOUT=0.25)


def test_a_name_lookup_gets_the_requests_budget_not_the_resolvers(
    make_app, slow_dns: SlowDns
) -> None:
    app = slow_dns_app(make_app)
    with app.app_context():
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable) as refused:
            check_address(SLOW_PROVIDER)
        took = time.monotonic() - began
    assert refused.value.message == (
        f"The identity provider's address ({SLOW_HOST}) could not be resolved within 0.25 seconds."
    )
    assert 0.25 <= took < 2  # the budget, not the resolver's retries (its answer never came)
    assert slow_dns.entered.is_set() and not slow_dns.finished.is_set()
    slow_dns.release.set()
    assert slow_dns.finished.wait(WAIT)  # the late lookup ends on its own thread, unwaited

    # The budget is the request's, shared: none left, no lookup is even started.
    with app.app_context():
        start_budget()
        g.oidc_deadline = time.monotonic() - 0.01
        with pytest.raises(ProviderUnavailable, match=r"did not answer within 0\.25 seconds"):
            check_address(SLOW_PROVIDER)
    assert slow_dns.lookups == 1


def point_at_slow_dns(acme: Partner, idp: ProviderServer) -> None:
    """Acme's provider, tested and saved, then moved to a name whose DNS is slow."""
    configure(acme, idp.issuer)
    with partner_scope(acme):
        [connection] = rows(SsoConnection)
        connection.discovery_url = SLOW_PROVIDER
        db.session.commit()


def test_test_connection_says_the_name_did_not_resolve_in_time(
    make_app, data: Flask, acme: Partner, acme_admin: User, idp: ProviderServer, slow_dns: SlowDns
) -> None:
    point_at_slow_dns(acme, idp)
    admin = logged_in(slow_dns_app(make_app), acme_admin)
    began = time.monotonic()
    page = admin.post_form("/admin/settings/login/test", follow_redirects=True)
    assert time.monotonic() - began < 2.5
    assert page.status_code == 200
    assert (
        f"Connection test failed: The identity provider&#39;s address ({SLOW_HOST}) could not "
        "be resolved within 0.25 seconds." in page.text
    )


def test_a_logout_token_while_the_providers_dns_is_slow_is_a_503(
    make_app, data: Flask, acme: Partner, acme_user: User, idp: ProviderServer, slow_dns: SlowDns
) -> None:
    point_at_slow_dns(acme, idp)
    token = idp.provider.logout_token(ACME_CLIENT[0], sid="sid-1")
    began = time.monotonic()
    answer = host_client(slow_dns_app(make_app), "acme").post(
        "/sso/backchannel-logout", data={"logout_token": token}
    )
    assert time.monotonic() - began < 2.5
    assert answer.status_code == 503 and answer.json == {
        "error": "temporarily_unavailable",
        "error_description": f"The identity provider's address ({SLOW_HOST}) could not be "
        "resolved within 0.25 seconds.",
    }


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


def test_a_call_goes_to_the_addresses_checked_never_a_second_lookup(
    make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is made to the addresses the check approved: the name is not looked
    up again (unbounded, and a second answer could be a private address)."""
    first, second = "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
    lookups: list[str] = []
    connects: list[tuple[str, int]] = []
    real = socket.getaddrinfo

    def lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "pinned.example.com":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        answer = [first, second] if len(lookups) == 1 else ["127.0.0.1"]  # rebinding
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connects.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", connect)
    app = slow_dns_app(make_app)
    with app.app_context(), pytest.raises(ProviderUnavailable, match="could not be reached"):
        start_budget()
        ProviderSession().request(
            "GET", "https://pinned.example.com/.well-known/x", withhold_token=True
        )
    assert lookups == ["pinned.example.com"]
    assert connects == [(first, 443), (second, 443)]  # each approved address, in order
