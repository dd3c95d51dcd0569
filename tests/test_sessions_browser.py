"""In the browser: sign in twice, end one session from the other, the ended one must sign in."""

from __future__ import annotations

import pytest
from browser import LiveServer, signed_in
from conftest import PASSWORD
from playwright.sync_api import expect

from portal.tenancy.models import Partner
from portal.users.models import User

pytestmark = pytest.mark.browser


def test_revoke_one_device_from_another(
    live_server: LiveServer, browser, acme: Partner, acme_user: User
) -> None:
    laptop = signed_in(browser, live_server, acme_user.email, PASSWORD)
    phone = signed_in(browser, live_server, acme_user.email, PASSWORD)
    laptop.click("text=See all devices where you are signed in")
    rows = laptop.locator("#own-sessions tbody tr")
    assert rows.count() == 2
    other = laptop.locator("#own-sessions tbody tr", has_not_text="this device")
    other.locator("button:has-text('Sign out')").click()
    expect(rows).to_have_count(1)  # no wait_for_function: the page's CSP forbids eval
    assert "this device" in laptop.locator("#own-sessions tbody").inner_text()

    phone.click("text=Home")  # the very next click
    phone.wait_for_url(lambda url: "/login" in url)
    assert phone.locator("h1").inner_text() == "Sign in to Acme Corp"
    laptop.reload()
    assert laptop.locator("#own-sessions tbody tr").count() == 1
    laptop.context.close()
    phone.context.close()
