"""In the browser, on a phone: a user prepares and downloads their data and closes their
account; an admin erases a person and sets retention; an operator offboards. Every page is
checked with axe-core (no serious or critical violations)."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from browser import LiveServer
from conftest import PASSWORD, make_user, rows
from flask import Flask
from playwright.sync_api import expect

from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.tenancy.models import Partner, PartnerStatus
from portal.users.models import User

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


def on_phone(browser: Any, server: LiveServer, email: str, slug: str | None = "acme") -> Any:
    # Reduced motion: axe measures colours when they are final, not halfway through a transition.
    context = browser.new_context(viewport=PHONE, reduced_motion="reduce")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(server.url(slug, "/login"))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def accessible(page: Any) -> None:
    violations = Axe().run(page).response["violations"]
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], bad
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a phone"


def test_user_downloads_and_closes_on_a_phone(
    live_server: LiveServer,
    browser: Any,
    make_app: Any,
    acme: Partner,
    acme_user: User,
    acme_admin: User,
) -> None:
    page = on_phone(browser, live_server, acme_user.email)
    page.goto(live_server.url("acme", "/account/data"))
    accessible(page)
    page.click("text=Prepare a copy of my data")
    expect(page.locator(".flash")).to_contain_text("Your copy is being prepared")
    result = make_app().test_cli_runner().invoke(args=["maintenance", "run"])
    assert result.exit_code == 0, result.output
    # No reload: the page asks again by itself while the copy is being prepared.
    expect(page.locator("#data-copy")).to_contain_text("is ready until", timeout=15_000)
    assert page.locator("#data-copy[hx-trigger]").count() == 0  # and then stops asking
    with page.expect_download() as download:
        page.click("text=Download my data")
    assert download.value.suggested_filename.startswith("my-data-")
    page.fill("#close-password", PASSWORD)
    page.click("text=Close my account")
    expect(page.locator(".flash")).to_contain_text("Your account closes on")
    accessible(page)
    page.click("text=Keep my account")
    expect(page.locator(".flash")).to_contain_text("Your account stays open")
    assert rows(User, id=acme_user.id)[0].closing_at is None
    page.context.close()


def test_admin_erases_and_sets_retention_on_a_phone(
    live_server: LiveServer, browser: Any, acme: Partner, acme_admin: User, acme_user: User
) -> None:
    page = on_phone(browser, live_server, acme_admin.email)
    page.goto(live_server.url("acme", f"/admin/users/{acme_user.id}"))
    accessible(page)
    page.check("input[name=confirm][value=erase]")
    page.click("text=Erase personal data")
    expect(page.locator(".flash")).to_contain_text("data is erased")
    assert rows(User, id=acme_user.id)[0].email.endswith("@erased.invalid")
    page.goto(live_server.url("acme", "/admin/settings/retention"))
    accessible(page)
    page.fill("#outbox_days", "12")
    page.click("text=Save retention")
    expect(page.locator(".flash")).to_contain_text("Retention saved")
    assert rows(Partner, id=acme.id)[0].retention.outbox_days == 12
    page.context.close()


def test_operator_offboards_on_a_phone(
    live_server: LiveServer, browser: Any, data: Flask, acme: Partner, globex: Partner
) -> None:
    make_user(acme, "boss@acme.test", role=Role.ADMIN)
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    page = on_phone(browser, live_server, "op@portal.test", slug=None)
    page.goto(live_server.url(None, f"/operator/partners/{acme.id}/offboarding"))
    accessible(page)
    with page.expect_download() as download:
        page.click("text=Download the archive")
    assert download.value.suggested_filename == "acme-archive.zip"
    page.fill("#grace_days", "3")
    page.fill("#close-confirm", "acme")
    page.click("text=Close Acme Corp")
    expect(page.locator(".flash")).to_contain_text("Acme Corp is closed")
    accessible(page)
    assert rows(Partner, id=acme.id)[0].status == PartnerStatus.CLOSED
    page.context.close()
