"""In the browser: the audit log's filters by keyboard (htmx), at desktop and phone widths."""

from __future__ import annotations

import pytest
from browser import LiveServer
from conftest import PASSWORD, make_user

from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1280, 390])
def test_who_filter_applies_on_enter_and_nothing_is_cut_off(
    live_server: LiveServer, browser, acme: Partner, acme_admin: User, width: int
) -> None:
    make_user(acme, "bob@acme.test", role=Role.BASIC)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(live_server.url("acme", "/login"))
    page.fill("#email", acme_admin.email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(live_server.url("acme", "/admin/audit/"))
    assert "User created" in page.locator("#audit-results").inner_text()
    page.fill("#audit-who", "no-such-person")
    page.press("#audit-who", "Enter")  # the Who field filters with Enter (it did nothing before)
    page.wait_for_selector("#audit-results >> text=No events match.")
    assert "who=no-such-person" in page.url  # the address keeps the filter (htmx push)
    page.fill("#audit-who", "")
    page.fill("#audit-target", "bob@acme.test")
    page.click("button:has-text('Filter')")
    page.wait_for_selector("#audit-results >> text=user bob@acme.test")
    assert "Signed in" not in page.locator("#audit-results tbody").inner_text()
    # Nothing wider than the window: the page never scrolls sideways.
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, overflow
    region = page.locator("[role=region][aria-label='Audit events']")
    assert region.get_attribute("tabindex") == "0"
    # The table does not scroll sideways either, and no column is squeezed to a few letters:
    # on a phone each event is a card (Who: …, What: …), with a visible link to its details.
    inner = region.evaluate("r => r.scrollWidth - r.clientWidth")
    assert inner <= 0, inner
    details = page.locator("#audit-results tbody a:has-text('details')").first
    assert details.is_visible() == (width < 576)
    if width < 576:
        who = page.locator("#audit-results tbody td[data-label=Who]").first
        assert who.evaluate("td => getComputedStyle(td, '::before').content") == '"Who: "'
        assert who.evaluate("td => getComputedStyle(td).display") == "block"
    page.click("#audit-results tbody a")  # the event's own page
    page.wait_for_selector("h1:has-text('User created')")
    context.close()
