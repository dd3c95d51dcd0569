"""In the browser: an admin invites a user, the invitee accepts from the outbox link, logs in."""

from __future__ import annotations

import re

import pytest
from browser import LiveServer
from conftest import PASSWORD, rows

from portal.mail.models import OutboxMessage
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus

pytestmark = pytest.mark.browser


def test_admin_invites_and_invitee_accepts(
    live_server: LiveServer, browser, acme: Partner, acme_admin: User
) -> None:
    admin = browser.new_context().new_page()
    admin.goto(live_server.url("acme", "/login"))
    admin.fill("#email", acme_admin.email)
    admin.fill("#password", PASSWORD)
    admin.click("button[type=submit]")
    admin.click("summary:has-text('Manage')")
    admin.click(".admin-menu >> text=Users")
    admin.click("text=Invite a user")
    admin.fill("#email", "newbie@acme.test")
    admin.select_option("#role", "advanced")
    admin.click("button:has-text('Send invitation')")
    assert "Invitation sent to newbie@acme.test." in admin.locator(".flash").inner_text()

    [mail] = rows(OutboxMessage, to_address="newbie@acme.test")
    link = re.search(r"http://acme\.localhost:\d+/invite/\S+", mail.body_text).group(0)
    invitee = browser.new_context().new_page()
    invitee.goto(link)
    assert "newbie@acme.test" in invitee.locator("article").inner_text()
    invitee.fill("#display_name", "Nora Newbie")
    invitee.fill("#password", PASSWORD)
    invitee.fill("#confirm", PASSWORD)
    invitee.click("button:has-text('Create my account')")
    invitee.wait_for_url(live_server.url("acme", "/login"))
    invitee.fill("#email", "newbie@acme.test")
    invitee.fill("#password", PASSWORD)
    invitee.click("button[type=submit]")
    assert invitee.locator("h1").inner_text() == "Welcome, Nora Newbie"
    [user] = rows(User, email="newbie@acme.test")
    assert user.status == UserStatus.ACTIVE

    # The admin's list shows the new, active user after a search.
    admin.click("summary:has-text('Manage')")
    admin.click(".admin-menu >> text=Users")
    admin.wait_for_url(live_server.url("acme", "/admin/users/"))  # loaded: htmx is listening
    admin.fill("#q", "newbie")
    admin.wait_for_selector("#user-table >> text=1 user matches.")
    assert "active" in admin.locator("#user-table tbody").inner_text()
    admin.context.close()
    invitee.context.close()
