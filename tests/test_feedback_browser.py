"""In the browser (issue 16): the screen stays in step with what is stored, and the main flows
work from the keyboard alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from browser import LiveServer, signed_in
from conftest import PASSWORD, make_user, rows

from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus

pytestmark = pytest.mark.browser


def test_bulk_role_change_redraws_the_rows_and_clears_the_ticks(
    live_server: LiveServer, browser: Any, acme: Partner, acme_admin: User
) -> None:
    for n in range(3):
        make_user(acme, f"user{n}@acme.test", role=Role.BASIC)
    page = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    page.goto(live_server.url("acme", "/admin/users/?q=user"))
    page.check("input[aria-label='Select user0@acme.test']")
    page.check("input[aria-label='Select user1@acme.test']")
    page.select_option("#bulk-form select[name=action]", "role")
    page.select_option("#bulk-form select[name=role]", "advanced")
    page.click("#bulk-form button:has-text('Apply')")
    page.wait_for_selector("#bulk-results article")
    assert "2 of 2 done" in page.locator("#bulk-results").inner_text(), page.locator(
        "#bulk-results"
    ).inner_text()
    table = page.locator("#user-table table.user-table tbody").inner_text()
    rows_text = {line.split("\t")[1]: line for line in table.splitlines() if "@" in line}
    assert "Advanced" in rows_text["user0@acme.test"]
    assert "Advanced" in rows_text["user1@acme.test"]
    assert "Basic" in rows_text["user2@acme.test"]
    assert page.locator("input[name=user_ids]:checked").count() == 0
    assert page.input_value("#q") == "user"  # still the list the admin was looking at
    page.context.close()


def test_bulk_and_single_deactivation_ask_first(
    live_server: LiveServer, browser: Any, acme: Partner, acme_admin: User
) -> None:
    target = make_user(acme, "leaver@acme.test", role=Role.BASIC)
    page = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.dismiss() if len(questions) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.goto(live_server.url("acme", "/admin/users/"))
    page.check("input[aria-label='Select leaver@acme.test']")
    page.select_option("#bulk-form select[name=action]", "deactivate")
    page.click("#bulk-form button:has-text('Apply')")
    for _ in range(100):  # the dialog is answered by Playwright's event loop: let it run
        if questions:
            break
        page.wait_for_timeout(20)
    assert len(questions) == 1, questions
    assert questions[0].startswith("Deactivate the selected users?")
    assert rows(User, email="leaver@acme.test")[0].status == UserStatus.ACTIVE  # declined
    page.click("#bulk-form button:has-text('Apply')")
    page.wait_for_selector("#bulk-results >> text=1 of 1 done")
    assert rows(User, email="leaver@acme.test")[0].status == UserStatus.DEACTIVATED
    assert "deactivated" in page.locator("#user-table table.user-table tbody").inner_text()

    other = make_user(acme, "other@acme.test", role=Role.BASIC)
    questions.clear()
    page.goto(live_server.url("acme", f"/admin/users/{other.id}"))
    page.click("button:has-text('Deactivate')")
    page.wait_for_load_state()
    assert questions == [
        "Deactivate other@acme.test? They are signed out at once and cannot sign in until "
        "reactivated."
    ]
    assert rows(User, email="other@acme.test")[0].status == UserStatus.ACTIVE
    assert target.id
    page.context.close()


def test_filters_come_back_with_the_list_after_back(
    live_server: LiveServer, browser: Any, acme: Partner, acme_admin: User
) -> None:
    make_user(acme, "findme@acme.test", role=Role.BASIC)
    page = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    page.goto(live_server.url("acme", "/admin/users/"))
    page.fill("#q", "findme")
    page.wait_for_selector("#user-table >> text=1 user matches.")
    page.click("#user-table >> text=findme@acme.test")
    page.wait_for_url("**/admin/users/*")
    page.go_back()
    page.wait_for_selector("#user-table >> text=1 user matches.")
    assert page.input_value("#q") == "findme"
    page.context.close()


def test_a_refused_switch_shows_its_real_state(
    live_server: LiveServer, browser: Any, acme: Partner, acme_admin: User
) -> None:
    page = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    page.goto(live_server.url("acme", "/admin/features/"))
    row = page.locator("#feature-password_login")
    row.locator("input[role=switch]").click()  # the only way in: refused
    page.wait_for_selector("#feature-password_login .form-error")
    assert row.locator("input[role=switch]").is_checked()
    assert "On" in row.locator(".switch-label").inner_text()
    page.context.close()


def test_an_expired_session_mid_action_comes_back_to_the_page(
    live_server: LiveServer, browser: Any, acme: Partner, acme_admin: User, frozen_clock
) -> None:
    page = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    page.goto(live_server.url("acme", "/admin/features/"))
    frozen_clock.advance(timedelta(hours=1))
    page.locator("#feature-reports input[role=switch]").click()
    page.wait_for_url(lambda url: "/login?next=" in url)
    assert "without activity" in page.locator(".flash").inner_text()
    page.fill("#email", acme_admin.email)
    page.fill("#password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_url(live_server.url("acme", "/admin/features/"))
    assert page.locator("h1").inner_text() == "Features"
    page.context.close()


# --- Keyboard only -----------------------------------------------------------------------------


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the element `selector` names has the focus (as a keyboard user would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
    raise AssertionError(f"{selector} never got the focus in {limit} tabs")


def test_keyboard_only_sign_in_menu_and_invite(
    live_server: LiveServer, browser: Any, acme: Partner, acme_admin: User
) -> None:
    page = browser.new_context().new_page()
    page.goto(live_server.url("acme", "/login"))
    # The first Tab reaches the skip link; the email field has the focus from the start.
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(acme_admin.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url("acme", "/"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    # The Manage menu opens with Enter, closes with Escape, and leads to Users.
    page.goto(live_server.url("acme", "/"))
    tab_to(page, "details.admin-menu summary")
    page.keyboard.press("Enter")
    assert page.locator("details.admin-menu").get_attribute("open") is not None
    page.keyboard.press("Escape")
    assert page.locator("details.admin-menu").get_attribute("open") is None
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")
    tab_to(page, ".admin-menu a[href$='/admin/users/']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/users/")
    tab_to(page, "a[href$='/admin/users/invite']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/users/invite")
    assert page.evaluate("document.activeElement.id") == "email"  # focused on arrival
    page.keyboard.type("kb@acme.test")
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash >> text=Invitation sent to kb@acme.test.")
    assert rows(User, email="kb@acme.test")[0].status == UserStatus.INVITED
    page.context.close()


def test_keyboard_only_subscribe_and_sign_out(
    live_server: LiveServer, browser: Any, acme: Partner
) -> None:
    from test_subscriptions import plan

    from portal.extensions import db
    from portal.tenancy.scope import partner_scope

    user = make_user(acme, "kbuser@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        plan("free", roles=(Role.BASIC,))
        db.session.commit()
    page = signed_in(browser, live_server, user.email, PASSWORD)
    tab_to(page, "a[href$='/account/subscription/']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/account/subscription/")
    tab_to(page, ".plan-card form button")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Choose Free"
    page.keyboard.press("Enter")
    page.wait_for_selector("#pending")
    tab_to(page, "input[name=accept_terms]")
    page.keyboard.press("Space")
    tab_to(page, "#pending button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash")
    assert "Free" in page.locator("#current").inner_text()
    tab_to(page, ".logout-form button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/login")
    assert "You have signed out." in page.locator(".flash").inner_text()
    page.context.close()
