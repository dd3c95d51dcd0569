"""End to end in the system Chromium: forgetting a password and choosing a new one."""

from __future__ import annotations

import pytest
from browser import LiveServer
from conftest import PASSWORD
from mailed import mailed_link

from portal.tenancy.models import Partner
from portal.users.models import User

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a-brand-new-passphrase"


def test_reset_a_forgotten_password_and_sign_in_with_it(
    live_server: LiveServer, page, acme: Partner, acme_user: User
) -> None:
    page.goto(live_server.url("acme", "/login"))
    page.click("text=Forgot your password?")
    page.wait_for_url(live_server.url("acme", "/password/forgot"))
    page.fill("#email", "alice@acme.test")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url("acme", "/password/forgot?sent=1"))
    assert page.locator("h1").inner_text() == "Check your email"

    # The link as the email carries it, read from the outbox.
    path = mailed_link(
        "alice@acme.test", "/password/reset/", host=f"acme.localhost:{live_server.port}"
    )
    page.goto(live_server.url("acme", path))
    assert page.locator("h1").inner_text() == "Choose a new password"
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", "not the same password")
    page.click("button[type=submit]")
    assert page.locator("#confirm-errors").inner_text() == "The two passwords are not the same."
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url("acme", "/login"))
    assert "Your password has been changed" in page.locator(".flash").inner_text()

    page.fill("#email", "alice@acme.test")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.locator("#login-error").inner_text() == "Incorrect email or password."
    page.fill("#password", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url("acme", "/"))
    assert page.locator("h1").inner_text() == "Welcome, Alice Acme"

    # The link is spent.
    page.goto(live_server.url("acme", path))
    assert page.locator("h1").inner_text() == "This link is invalid or has expired"
