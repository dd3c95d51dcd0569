"""In the browser, on both demo partners: the demo support agent finds the demo basic user,
acts as them with a reason, sees the banner, changes something allowed, is refused a password
change, stops, and the basic user sees the access in their account activity."""

from __future__ import annotations

import pytest
from browser import LiveServer, signed_in
from conftest import rows
from flask import Flask
from playwright.sync_api import expect

from portal.demo.seed import DEMO_PASSWORD
from portal.support.models import EndReason, Impersonation
from portal.users.models import User

pytestmark = pytest.mark.browser

REASON = "Asked on the phone why the plan page looks empty"
PHONE = {"width": 390, "height": 844}


@pytest.mark.parametrize("slug", ["acme", "globex"])
def test_support_agent_acts_as_the_basic_user(
    live_server: LiveServer, browser, data: Flask, slug: str
) -> None:
    seeded = data.test_cli_runner().invoke(args=["seed-demo"])
    assert seeded.exit_code == 0, seeded.output
    context = browser.new_context(viewport=PHONE)  # the agent works on a phone
    context.set_default_timeout(10_000)
    agent = context.new_page()
    agent.goto(live_server.url(slug, "/login"))
    agent.get_by_label("Email").fill(f"support@{slug}.test")
    agent.get_by_label("Password").fill(DEMO_PASSWORD)
    agent.get_by_role("button", name="Sign in", exact=True).click()
    agent.wait_for_url(live_server.url(slug, "/"))

    agent.get_by_role("link", name="Support").click()
    agent.wait_for_url(live_server.url(slug, "/support/"))  # loaded: htmx is listening
    results = agent.locator("#support-table tbody tr")
    everyone = results.count()
    agent.get_by_label("Role").select_option("admin")
    expect(results).to_have_count(1)  # htmx narrowed the table: the demo's one admin
    expect(results).to_contain_text(f"admin@{slug}.test")
    agent.get_by_label("Role").select_option("")
    expect(results).to_have_count(everyone)
    agent.get_by_label("Search by email or name").fill(f"basic@{slug}")
    expect(results).to_have_count(1)  # and again as the agent typed
    expect(results).to_contain_text(f"basic@{slug}.test")
    results.get_by_role("link", name=f"basic@{slug}.test").click()
    expect(agent.locator("h1")).to_have_text("Basic")

    agent.get_by_label("Reason (the user reads it)").fill(REASON)
    agent.get_by_label("Ticket reference (optional)").fill("CASE-1234")
    agent.get_by_role("button", name="Act as Basic").click()
    banner = agent.locator(".support-banner")
    expect(banner).to_contain_text(f"you are acting as Basic (basic@{slug}.test)")
    expect(banner).to_contain_text(REASON)
    expect(banner).to_contain_text("CASE-1234")
    expect(banner).to_contain_text("30 minutes left")
    expect(agent.get_by_text(f"You are now acting as basic@{slug}.test.")).to_be_visible()
    stop = banner.get_by_role("button", name="Stop")
    expect(stop).to_be_in_viewport()

    agent.goto(live_server.url(slug, "/account/profile"))
    agent.get_by_label("Display name").fill("Basic Helped")
    agent.get_by_role("button", name="Save").click()
    expect(agent.get_by_text("Your profile is saved.")).to_be_visible()
    expect(banner).to_be_visible()  # on every page

    agent.goto(live_server.url(slug, "/account/password"))
    expect(agent.locator("h1")).to_have_text("Not allowed")
    expect(agent.get_by_text("support cannot change the password")).to_be_visible()

    agent.locator(".support-banner").get_by_role("button", name="Stop").click()
    expect(agent.get_by_text("You are back in your own account.")).to_be_visible()
    expect(agent.locator(".support-banner")).to_have_count(0)
    expect(agent.locator("h1")).to_have_text("Basic Helped")  # the summary, as the agent
    [imp] = rows(Impersonation)
    assert imp.end_reason == EndReason.STOPPED
    [basic] = [u for u in rows(User) if u.email == f"basic@{slug}.test"]
    assert basic.display_name == "Basic Helped" and basic.last_login_at is None

    user = signed_in(browser, live_server, f"basic@{slug}.test", DEMO_PASSWORD, slug)
    user.get_by_role("link", name="Account").click()
    user.get_by_role("link", name="Activity").click()
    access = user.locator("#support-access tbody tr")
    expect(access).to_have_count(1)
    expect(access).to_contain_text("Support (support)")
    expect(access).to_contain_text(REASON)
    expect(access).to_contain_text("CASE-1234")
    for page in (agent, user):
        page.context.close()
