"""Single sign-on test support: a real OpenID Connect provider over HTTP on 127.0.0.1.

The provider is the package's own demo provider (Authlib's server components), each test's
own instance, served by werkzeug in a thread. The portal reaches it over real HTTP; the test
plays the browser with `requests` at the provider and the Flask client at the portal.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from portal.extensions import db
from portal.features.services import switch_feature
from portal.sso.client import probe_provider
from portal.sso.demo_provider import (
    DemoClient,
    DemoPerson,
    DemoProvider,
    create_provider_app,
)
from portal.sso.services import ConnectionInput, save_connection
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope

if TYPE_CHECKING:
    from conftest import HostClient

ACME_CLIENT = ("acme-client", "acme-secret-6f1d2c9b8a")
GLOBEX_CLIENT = ("globex-client", "globex-secret-0e9a7b3c5d")
ALICE = DemoPerson("sub-alice", "alice@acme.test", "Alice Acme")
NEWBIE = DemoPerson("sub-newbie", "newbie@acme.test", "Nina Newbie")
UNVERIFIED = DemoPerson("sub-unverified", "alice@acme.test", "Not Alice", email_verified=False)
OUTSIDER = DemoPerson("sub-outsider", "oscar@example.org", "Oscar Outsider")
GUS = DemoPerson("sub-gus", "gus@globex.test", "Gus Globex")
ADMIN = DemoPerson("sub-admin", "root@acme.test", "Ada Admin")
PEOPLE = [ALICE, NEWBIE, UNVERIFIED, OUTSIDER, GUS, ADMIN]


class ProviderServer:
    """A DemoProvider on an ephemeral 127.0.0.1 port, in a thread."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.port = self.server.server_port
        self.rebase(f"http://127.0.0.1:{self.port}")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def rebase(self, issuer: str, callback_host: str = "localhost") -> None:
        """A new provider (new keys, no codes) naming itself `issuer` (a proxy in front)."""
        self.issuer = issuer
        self.provider = DemoProvider(
            issuer=issuer,
            clients=[
                DemoClient(
                    *ACME_CLIENT,
                    (f"http://acme.{callback_host}/sso/callback",),
                    f"http://acme.{callback_host}/sso/backchannel-logout",
                ),
                DemoClient(
                    *GLOBEX_CLIENT,
                    (f"http://globex.{callback_host}/sso/callback",),
                    f"http://globex.{callback_host}/sso/backchannel-logout",
                ),
            ],
            people=list(PEOPLE),
        )
        self.app = create_provider_app(self.provider)

    def _dispatch(self, environ: dict, start_response: Any) -> Any:
        return self.app(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture
def idp() -> Iterator[ProviderServer]:
    server = ProviderServer()
    yield server
    server.close()


def configure(
    partner: Partner,
    address: str,
    client: tuple[str, str] = ACME_CLIENT,
    *,
    auto_provision: bool = False,
    link_by_email: bool = True,
    domains: str = "",
    role: str = "basic",
    sso_on: bool = True,
) -> None:
    """Connect `partner` to the provider at `address` as its admin would (tested, switched on)."""
    with partner_scope(partner):
        probe = probe_provider(address)
        assert probe.ok, probe.problem
        save_connection(
            ConnectionInput(
                discovery_url=address,
                client_id=client[0],
                client_secret=client[1],
                scopes="openid email profile",
                button_label="Acme ID",
                allowed_domains=domains,
                auto_provision=auto_provision,
                provision_role=role,
                link_by_email=link_by_email,
            ),
            probe,
        )
        if sso_on:
            switch_feature("oidc_login", True)
        db.session.commit()


@dataclass
class Flow:
    """One sign-in as a browser makes it: the portal, then the provider, then back."""

    client: HostClient
    authorize_url: str

    @property
    def state(self) -> str:
        return parse_qs(urlsplit(self.authorize_url).query)["state"][0]

    def choose(self, person: DemoPerson | None) -> str:
        """Sign in at the provider as `person` (None: cancel); the callback path and query."""
        page = requests.get(self.authorize_url, timeout=5, allow_redirects=False)
        assert page.status_code == 200, page.text
        form = {"person": person.subject} if person else {"cancel": "1"}
        answer = requests.post(self.authorize_url, data=form, timeout=5, allow_redirects=False)
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["Location"])
        return f"{location.path}?{location.query}"

    def back(self, callback: str) -> Any:
        return self.client.get(callback)


def start(client: HostClient, next_path: str = "") -> Flow:
    token = client.csrf_token("/login")
    response = client.post("/sso/start", data={"csrf_token": token, "next": next_path})
    assert response.status_code == 302, response.text
    return Flow(client, response.headers["Location"])


def sign_in(client: HostClient, person: DemoPerson, next_path: str = "") -> Any:
    """The whole flow; the portal's answer to the callback."""
    flow = start(client, next_path)
    return flow.back(flow.choose(person))
