"""End to end in the system Chromium: what a person sees on a partner's own address."""

from __future__ import annotations

import html

import pytest
from browser import LiveServer
from conftest import PASSWORD

from portal.tenancy.models import Partner
from portal.users.models import User

pytestmark = pytest.mark.browser


def test_login_on_acme_shows_the_partner_name(
    live_server: LiveServer, page, acme: Partner, acme_user: User, globex: Partner
) -> None:
    page.goto(live_server.url("acme"))
    assert page.url.startswith(live_server.url("acme", "/login"))
    assert page.locator("h1").inner_text() == "Sign in to Acme Corp"
    page.fill("#email", "alice@acme.test")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url("acme", "/"))
    assert page.locator("h1").inner_text() == "Welcome, Alice Acme"
    assert "Acme Corp" in page.locator(".site-header").inner_text()
    assert "Globex" not in page.content()
    # The cookie is host-only: globex's portal does not know this browser.
    page.goto(live_server.url("globex"))
    assert page.locator("h1").inner_text() == "Sign in to Globex"
    # Log out from acme with the button every page shows.
    page.goto(live_server.url("acme"))
    page.click("text=Log out")
    page.wait_for_url(live_server.url("acme", "/login"))
    assert "You have signed out." in page.content()


def test_wrong_password_shows_the_error_in_place(
    live_server: LiveServer, page, acme: Partner, acme_user: User
) -> None:
    page.goto(live_server.url("acme", "/login"))
    page.fill("#email", "alice@acme.test")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    assert page.locator("#login-error").inner_text() == "Incorrect email or password."
    assert page.input_value("#email") == "alice@acme.test"


def test_the_favicon_draws_in_the_partners_colour(
    live_server: LiveServer, page, acme: Partner
) -> None:
    page.goto(live_server.url("acme", "/login"))
    href = page.locator('link[rel="icon"]').get_attribute("href")
    page.goto("about:blank")
    page.set_content(f'<img alt="icon" width="32" height="32" src="{html.escape(href)}">')
    # decode() fails for an image the browser cannot draw; the left edge is the brand colour.
    pixel = page.locator("img").evaluate(
        """async img => {
            await img.decode();
            const canvas = document.createElement("canvas");
            canvas.width = canvas.height = 32;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0, 32, 32);
            return Array.from(context.getImageData(1, 16, 1, 1).data);
        }"""
    )
    assert pixel == [0x25, 0x63, 0xEB, 255]  # acme's #2563eb
