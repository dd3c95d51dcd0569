"""In the browser: an admin switches self sign-up on, a visitor signs up and chooses a password
from the emailed link; off, the page is gone."""

from __future__ import annotations

import re

import pytest
from browser import LiveServer
from conftest import PASSWORD, rows

from portal.mail.models import OutboxMessage
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus

pytestmark = pytest.mark.browser


def test_self_signup_switch(
    live_server: LiveServer, browser, acme: Partner, acme_admin: User
) -> None:
    admin = browser.new_context().new_page()
    admin.goto(live_server.url("acme", "/login"))
    admin.fill("#email", acme_admin.email)
    admin.fill("#password", PASSWORD)
    admin.click("button[type=submit]")
    admin.click("summary:has-text('Manage')")
    admin.click(".admin-menu >> text=Features")
    row = admin.locator("#feature-self_signup")
    assert "Off by default" in row.inner_text()
    row.get_by_role("switch").check()
    admin.wait_for_selector("#feature-self_signup >> text=Switched on by the partner")

    visitor = browser.new_context().new_page()
    visitor.goto(live_server.url("acme", "/login"))
    visitor.click("text=Create an account")
    assert visitor.locator("input[type=password]").count() == 0  # chosen after the link
    visitor.fill("#email", "walkin@acme.test")
    visitor.fill("#display_name", "Walk In")
    visitor.click("button[type=submit]")
    assert visitor.locator("h1").inner_text() == "Check your email"
    [user] = rows(User, email="walkin@acme.test")
    assert user.status == UserStatus.INVITED and user.password_hash is None
    [mail] = rows(OutboxMessage, to_address="walkin@acme.test")
    link = re.search(r"http://acme\.localhost:\d+/signup/verify/\S+", mail.body_text).group(0)
    visitor.goto(link)
    assert visitor.locator("h1").inner_text() == "Choose your password"
    assert visitor.input_value("#display_name") == "Walk In"
    visitor.fill("#password", PASSWORD)
    visitor.fill("#confirm", "not the same password")
    visitor.click("button[type=submit]")
    assert visitor.locator("#confirm-errors").inner_text() == "The two passwords are not the same."
    visitor.fill("#password", PASSWORD)
    visitor.fill("#confirm", PASSWORD)
    visitor.click("button[type=submit]")
    visitor.wait_for_url(live_server.url("acme", "/login"))
    assert "Your account is ready" in visitor.locator(".flash").inner_text()
    visitor.fill("#email", "walkin@acme.test")
    visitor.fill("#password", PASSWORD)
    visitor.click("button[type=submit]")
    assert visitor.locator("h1").inner_text() == "Welcome, Walk In"

    admin.reload()
    admin.locator("#feature-self_signup").get_by_role("switch").uncheck()
    admin.wait_for_selector("#feature-self_signup >> text=Switched off by the partner")
    anonymous = browser.new_context().new_page()
    response = anonymous.goto(live_server.url("acme", "/signup"))
    assert response.status == 404
    anonymous.goto(live_server.url("acme", "/login"))
    assert "Create an account" not in anonymous.content()
    for page in (admin, visitor, anonymous):
        page.context.close()
