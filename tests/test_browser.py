"""End to end in the system Chromium: what a person sees on a partner's own address."""

from __future__ import annotations

import pytest
from browser import LiveServer
from conftest import PASSWORD

from portal.tenancy.models import Partner
from portal.users.models import User

pytestmark = pytest.mark.browser


def test_login_on_acme_shows_the_partner_name(
    live_server: LiveServer, page, acme: Partner, acme_user: User, globex: Partner
) -> None:
    page.goto(live_server.url("acme"))
    assert page.url.startswith(live_server.url("acme", "/login"))
    assert page.locator("h1").inner_text() == "Sign in to Acme Corp"
    page.fill("#email", "alice@acme.test")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url("acme", "/"))
    assert page.locator("h1").inner_text() == "Welcome, Alice Acme"
    assert "Acme Corp" in page.locator(".site-header").inner_text()
    assert "Globex" not in page.content()
    # The cookie is host-only: globex's portal does not know this browser.
    page.goto(live_server.url("globex"))
    assert page.locator("h1").inner_text() == "Sign in to Globex"
    # Log out from acme with the button every page shows.
    page.goto(live_server.url("acme"))
    page.click("text=Log out")
    page.wait_for_url(live_server.url("acme", "/login"))
    assert "You have signed out." in page.content()


def test_wrong_password_shows_the_error_in_place(
    live_server: LiveServer, page, acme: Partner, acme_user: User
) -> None:
    page.goto(live_server.url("acme", "/login"))
    page.fill("#email", "alice@acme.test")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    assert page.locator("#login-error").inner_text() == "Incorrect email or password."
    assert page.input_value("#email") == "alice@acme.test"
