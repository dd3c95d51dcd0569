"""In the browser (issue 16): the screen stays in step with what is stored, and the main flows
work from the keyboard alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from browser import LiveServer, signed_in
from conftest import PASSWORD, make_user, rows, set_feature
from playwright.sync_api import expect

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.support.models import EndReason, Impersonation
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus
from portal.users.queries import PER_PAGE

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
    expect(page.locator("#email")).to_be_focused()
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
    expect(page.locator("#email")).to_be_focused()  # focused on arrival
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


def focused(page: Any) -> str:
    """What has the focus: its text, or its id when it has no text of its own."""
    return page.evaluate(
        "(document.activeElement.innerText || document.activeElement.id || '').trim()"
    )


def test_keyboard_only_support_agent_acts_as_a_user_and_stops(
    live_server: LiveServer, browser: Any, acme: Partner
) -> None:
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", is_support=True, display_name="Sam Support")
    bob = make_user(acme, "bob@acme.test", display_name="Bob Basic")
    make_user(acme, "bea@acme.test", display_name="Bea Basic")
    page = browser.new_context().new_page()
    page.context.set_default_timeout(10_000)
    page.goto(live_server.url("acme", "/login"))
    page.keyboard.type(agent.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url("acme", "/"))
    tab_to(page, "a[href$='/support/']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/support/")
    tab_to(page, "#q")
    page.keyboard.type("bob")
    page.wait_for_selector("#support-table >> text=1 user matches.")
    assert page.evaluate("document.activeElement.id") == "q"  # the swap left the focus be
    tab_to(page, "#support-table a")
    assert focused(page) == "bob@acme.test"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/support/users/{bob.id}")
    assert page.locator("h1").inner_text() == "Bob Basic"
    tab_to(page, "#reason")
    page.keyboard.type("too short")
    page.keyboard.press("Tab")
    page.keyboard.type("CASE-77")
    page.keyboard.press("Enter")  # submits the form from its last field
    page.wait_for_selector("#reason-errors")
    # Refused: the reason's field has the focus again, with its message, and keeps the text.
    expect(page.locator("#reason")).to_be_focused()  # once the swapped form has settled
    assert "in at least 10 characters" in page.locator("#reason-errors").inner_text()
    assert page.input_value("#reason") == "too short"
    assert rows(Impersonation) == []
    page.keyboard.press("End")
    page.keyboard.type(": the invoice page is empty")
    tab_to(page, "#act-as button[type=submit]")
    assert focused(page) == "Act as Bob Basic"
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url("acme", "/"))
    banner = page.locator(".support-banner")
    assert "you are acting as Bob Basic (bob@acme.test)" in banner.inner_text()
    assert "Reason: too short: the invoice page is empty · ticket CASE-77." in banner.inner_text()
    # The confirmation has the focus, so a screen reader reads it out; the banner's Stop is
    # one Shift+Tab away.
    assert focused(page).startswith("You are now acting as bob@acme.test.")
    [imp] = rows(Impersonation)
    assert (imp.agent_id, imp.target_id, imp.ticket, imp.ended_at) == (
        agent.id,
        bob.id,
        "CASE-77",
        None,
    )
    assert imp.reason == "too short: the invoice page is empty"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.closest('.support-banner') !== null")
    assert focused(page) == "Stop"
    page.keyboard.press("Space")
    page.wait_for_url(f"**/support/users/{bob.id}")
    assert focused(page).startswith("You are back in your own account.")
    assert page.locator(".support-banner").count() == 0
    assert page.locator(".who").inner_text() == "Sam Support"
    [imp] = rows(Impersonation)
    assert imp.end_reason == EndReason.STOPPED and imp.ended_at is not None
    events = [e for e in rows(AuditEvent) if e.action.startswith("support.")]
    assert [(e.action, e.actor_id, e.on_behalf_of_id, e.impersonation_id) for e in events] == [
        ("support.impersonation_start", agent.id, bob.id, imp.id),
        ("support.impersonation_end", agent.id, bob.id, imp.id),
    ]
    assert events[1].details["how"] == "stopped"
    page.context.close()


def test_keyboard_only_operator_onboards_a_partner(
    live_server: LiveServer, browser: Any, acme: Partner
) -> None:
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    page = browser.new_context().new_page()
    page.context.set_default_timeout(10_000)
    page.goto(live_server.url(None, "/login"))
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type("op@portal.test")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url(None, "/operator/"))
    tab_to(page, "a[href$='/operator/partners/new']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/operator/partners/new")
    expect(page.locator("#name")).to_be_focused()  # focused on arrival
    page.keyboard.type("Initech")
    page.keyboard.press("Tab")
    page.keyboard.type("acme")  # taken
    page.keyboard.press("Tab")
    page.keyboard.type("Boss@Initech.test")
    page.keyboard.press("Enter")
    page.wait_for_selector("p.form-error")
    # Refused: the message has the focus, the fields keep what was typed, nothing is stored.
    assert focused(page) == "The address name acme is taken."
    assert page.input_value("#name") == "Initech"
    assert [p.slug for p in rows(Partner)] == ["acme"]
    tab_to(page, "#slug")
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("initech")
    tab_to(page, "#base_theme")
    page.keyboard.press("ArrowDown")  # a closed list steps to the next theme: midnight
    assert page.input_value("#base_theme") == "midnight"
    tab_to(page, "form button[type=submit]")
    assert focused(page) == "Create the partner and invite the admin"
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url(None, "/operator/"))
    assert focused(page) == (
        f"Initech is live at initech.localhost:{live_server.port}; "
        "its first admin has been invited."
    )
    assert "Initech" in page.locator("table").inner_text()
    [initech] = rows(Partner, slug="initech")
    assert (initech.name, initech.theme.base) == ("Initech", "midnight")
    [boss] = rows(User, partner_id=initech.id)
    assert (boss.email, boss.role, boss.status) == (
        "boss@initech.test",
        Role.ADMIN,
        UserStatus.INVITED,
    )
    assert len(rows(OutboxMessage, to_address="boss@initech.test")) == 1
    events = [e for e in rows(AuditEvent) if e.partner_id != acme.id]
    assert [(e.action, e.partner_id) for e in events] == [
        ("operator.login", None),
        ("operator_session.start", None),
        ("partner.create", None),
        ("user.create", initech.id),
        ("invitation.send", initech.id),
        ("partner.create", initech.id),
    ]
    assert {e.actor_label for e in events} == {"op@portal.test"}
    page.context.close()


def test_keyboard_only_paging_keeps_the_place(
    live_server: LiveServer, browser: Any, acme: Partner
) -> None:
    """The pager's link is replaced by the page it asks for (htmx): the focus goes to the new
    page of results, not back to the top of the document."""
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", is_support=True, display_name="Sam Support")
    for n in range(PER_PAGE):
        make_user(acme, f"user{n:02d}@acme.test")
    page = signed_in(browser, live_server, agent.email, PASSWORD)
    page.goto(live_server.url("acme", "/support/"))
    tab_to(page, "#support-table a[rel=next]", limit=PER_PAGE + 20)
    page.keyboard.press("Enter")
    page.wait_for_selector("#support-table >> text=Page 2 of 2")
    expect(page.locator("#support-table")).to_be_focused()
    assert page.evaluate("location.search").endswith("&page=2")  # the address follows
    page.keyboard.press("Tab")  # on to the first user of page 2, in the list's order
    assert focused(page) == "user24@acme.test"
    page.keyboard.press("Shift+Tab")  # and back to the filters above
    assert page.evaluate("document.activeElement.id") == "subscription-filter"
    page.context.close()
