"""Each person's main tasks in the browser, on the demo data, as the guides in docs/ tell them
(issue 16). Every step checks what the person reads; the screenshots go to the directory named
by PORTAL_SCREENSHOTS (`make screenshots` writes docs/screenshots/), else to a temporary one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import LiveServer
from pages import DESKTOP, PHONE, seed, sign_in

from portal.demo.seed import DEMO_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("PORTAL_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
def demo(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    yield seed(live_server.server.app)


def person(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(15_000)
    return context.new_page()


def snap(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"))


def test_visitor(live_server: LiveServer, browser: Any, demo, shots: Path) -> None:
    page = person(browser)
    page.goto(live_server.url(None, "/"))
    snap(page, shots, "root-landing")
    for slug, brand in (("acme", "Acme Corp"), ("globex", "Globex")):
        page.goto(live_server.url(slug, "/"))
        page.wait_for_url("**/login")
        assert page.locator("h1").inner_text() == f"Sign in to {brand}"
        snap(page, shots, f"{slug}-sign-in")
    page.fill("#email", "nobody@globex.test")
    page.fill("#password", "not-a-password")
    page.click("form.login-form button[type=submit]")
    assert page.locator("#login-error").inner_text() == "Incorrect email or password."
    assert "Open the link in the email we sent you" in page.locator("#login-hint").inner_text()
    page.click("text=Forgot your password?")
    assert "password" in page.locator("h1").inner_text().lower()
    page.context.close()


def test_end_user(live_server: LiveServer, browser: Any, demo, shots: Path) -> None:
    page = person(browser)
    base = live_server.url("acme", "").rstrip("/")
    sign_in(page, base, "basic@acme.test")
    assert "What you can do here" in page.locator("main").inner_text()
    snap(page, shots, "user-home")
    page.click("nav >> text=Subscription")
    first = page.locator(".plan-card").first
    assert "plan-unavailable" not in (first.get_attribute("class") or "")
    first.locator("button").click()
    page.check("input[name=accept_terms]")
    page.click("#pending button:has-text('Confirm')")
    assert page.locator(".flash").count() >= 1
    snap(page, shots, "user-subscription")
    page.click("nav >> text=Account")
    page.click(".tabs >> text=Devices")
    assert "this device" in page.locator("main").inner_text()
    snap(page, shots, "user-devices")
    page.context.close()

    phone = person(browser, PHONE)
    sign_in(phone, live_server.url("globex", "").rstrip("/"), "basic@globex.test")
    snap(phone, shots, "globex-phone-home")
    phone.context.close()


def test_partner_admin(live_server: LiveServer, browser: Any, demo, shots: Path) -> None:
    page = person(browser)
    base = live_server.url("acme", "").rstrip("/")
    sign_in(page, base, "admin@acme.test")
    snap(page, shots, "acme-home")
    page.click("summary:has-text('Manage')")
    page.click(".admin-menu >> text=Users")
    page.wait_for_url("**/admin/users/")
    page.fill("#q", "acme.test")
    page.wait_for_selector("#user-table >> text=users match.")
    page.check("input[aria-label='Select guest@acme.test']")
    page.select_option("#bulk-form select[name=action]", "role")
    page.select_option("#bulk-form select[name=role]", "basic")
    page.click("#bulk-form button:has-text('Apply')")
    page.wait_for_selector("#bulk-results article")
    assert "1 of 1 done" in page.locator("#bulk-results").inner_text()
    snap(page, shots, "admin-users-bulk")
    page.click("#user-table >> text=basic@acme.test")
    page.wait_for_url("**/admin/users/*")
    snap(page, shots, "admin-user-detail")
    page.goto(base + "/admin/users/invite")
    page.fill("#email", "new.colleague@acme.test")
    page.click("button:has-text('Send invitation')")
    assert "Invitation sent to new.colleague@acme.test." in page.locator(".flash").inner_text()
    page.goto(base + "/admin/features/")
    snap(page, shots, "admin-features")
    page.goto(base + "/admin/settings/sessions")
    page.fill("#idle_minutes", "1")
    page.fill("#absolute_hours", "0")
    page.click("button:has-text('Save session policy')")
    assert page.locator(".field-error").count() == 2
    snap(page, shots, "admin-settings-errors")
    page.goto(base + "/admin/plans/")
    snap(page, shots, "admin-plans")
    page.context.close()


def test_support_agent(live_server: LiveServer, browser: Any, demo, shots: Path) -> None:
    page = person(browser)
    sign_in(page, live_server.url("globex", "").rstrip("/"), "support@globex.test")
    page.get_by_role("link", name="Support").click()
    page.wait_for_url("**/support/")
    page.get_by_label("Search by email or name").fill("basic@globex")
    page.locator("#support-table").get_by_role("link", name="basic@globex.test").click()
    snap(page, shots, "support-summary")
    page.get_by_label("Reason (the user reads it)").fill("Customer asked for help with the plan")
    page.get_by_label("Ticket reference (optional)").fill("CASE-42")
    page.get_by_role("button", name="Act as Basic").click()
    banner = page.locator(".support-banner")
    assert "Customer asked for help with the plan" in banner.inner_text()
    snap(page, shots, "support-acting")
    banner.get_by_role("button", name="Stop").click()
    assert page.locator(".support-banner").count() == 0
    page.context.close()


def test_operator(live_server: LiveServer, browser: Any, demo, shots: Path) -> None:
    page = person(browser)
    base = live_server.url(None, "").rstrip("/")
    sign_in(page, base, "operator@portal.test")
    assert page.locator("h1").inner_text() == "Partners"
    snap(page, shots, "operator-partners")
    page.click("text=Onboard a partner")
    page.fill("#name", "Initech")
    page.fill("#slug", "initech")
    page.fill("#admin_email", "boss@initech.test")
    snap(page, shots, "operator-onboard")
    page.click("button:has-text('Create the partner')")
    assert "Initech" in page.locator("main").inner_text()

    # A user of Acme is signed in when the operator suspends Acme, and is told why afterwards.
    user = person(browser)
    sign_in(user, live_server.url("acme", "").rstrip("/"), "basic@acme.test")
    row = page.locator("tr", has_text="Acme Corp")
    row.locator("summary:has-text('Suspend')").click()
    row.locator("input[name=reason]").fill("unpaid invoices")
    row.locator("button:has-text('Suspend')").click()
    page.wait_for_selector("tr:has-text('Acme Corp') >> text=suspended")
    user.reload()
    assert "unavailable" in user.locator("main").inner_text()
    snap(user, shots, "partner-unavailable")
    page.locator("tr", has_text="Acme Corp").locator("button:has-text('Reactivate')").click()
    page.wait_for_selector("tr:has-text('Acme Corp') >> text=active")
    user.goto(live_server.url("acme", "/account/profile"))
    user.wait_for_url(lambda url: "/login" in url)
    assert "was suspended for a while" in user.locator(".flash").inner_text()
    snap(user, shots, "signed-out-reason")
    user.fill("#email", "basic@acme.test")
    user.fill("#password", DEMO_PASSWORD)
    user.click("form.login-form button[type=submit]")
    user.wait_for_url("**/account/profile")
    user.context.close()
    page.context.close()
