"""In the browser, on a phone: an admin switches the partner API on, creates a client, copies
the secret shown once; the back office then gets a token and calls the API over real HTTP."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
from browser import LiveServer
from conftest import PASSWORD, rows
from playwright.sync_api import expect

from portal.api.models import ApiClient
from portal.tenancy.models import Partner
from portal.users.models import User

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


def http(
    server: LiveServer, path: str, *, data: bytes | None = None, headers: dict[str, str]
) -> dict:
    """A request of the back office over real HTTP (Python resolves no *.localhost: the
    address is the loopback one, the host header acme's)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}",
        data=data,
        headers={**headers, "Host": f"acme.localhost:{server.port}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_admin_creates_a_client_and_the_back_office_uses_it(
    live_server: LiveServer, browser, acme: Partner, acme_admin: User
) -> None:
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(live_server.url("acme", "/login"))
    page.fill("#email", acme_admin.email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.click("summary:has-text('Manage')")
    page.click(".admin-menu >> text=Features")
    page.locator("#feature-api_access").get_by_role("switch").check()
    page.wait_for_selector("#feature-api_access >> text=Switched on by the partner")
    page.goto(live_server.url("acme", "/"))
    page.click("summary:has-text('Manage')")
    page.click(".admin-menu >> text=API clients")
    page.fill("#name", "ERP")
    page.get_by_label("users:read").check()
    page.click("button:has-text('Create client')")
    secret_box = page.locator("[data-secret]")
    expect(secret_box).to_be_visible()
    secret = secret_box.inner_text()
    [client] = rows(ApiClient)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.goto(live_server.url("acme", "/developers"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.goto(live_server.url("acme", "/admin/api-clients/"))
    assert secret not in page.content()

    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    token = http(
        live_server,
        "/oauth/token",
        data=b"grant_type=client_credentials",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )["access_token"]
    users = http(live_server, "/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert [u["email"] for u in users["data"]] == [acme_admin.email]
