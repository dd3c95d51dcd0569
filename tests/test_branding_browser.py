"""In the browser: an admin changes colours, theme and logo, watches the preview, saves; a user
then sees the new look, and the next email carries the logo."""

from __future__ import annotations

import pytest
from browser import LiveServer, signed_in
from conftest import PASSWORD, rows
from PIL import Image

from portal.branding.models import PartnerLogo
from portal.mail.models import OutboxMessage
from portal.tenancy.models import Partner
from portal.theming import PAGE_BACKGROUNDS, contrast
from portal.users.models import User

pytestmark = pytest.mark.browser


def test_admin_brands_the_portal_and_a_user_sees_it(
    live_server: LiveServer, browser, acme: Partner, acme_admin: User, acme_user: User, tmp_path
) -> None:
    logo_file = tmp_path / "rocket.png"
    Image.new("RGBA", (300, 100), (220, 40, 40, 255)).save(logo_file)

    admin = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    admin.set_viewport_size({"width": 1280, "height": 900})
    admin.click("summary:has-text('Manage')")
    admin.click(".admin-menu >> text=Settings")
    admin.click("nav.tabs >> text=Branding")
    admin.wait_for_url(live_server.url("acme", "/admin/settings/branding/"))

    admin.fill("#brand_name", "Acme Rockets")
    admin.fill("#primary_color", "#facc15")
    admin.set_input_files("#logo", str(logo_file))
    admin.check("input[name=base][value=sidebar]")
    preview = admin.locator("#preview-box")
    # The preview follows the form, before anything is saved.
    admin.wait_for_selector("#preview-box[data-base=sidebar]")
    admin.wait_for_function(
        "document.querySelector('#preview-box .brand-logo')?.src.startsWith('data:image/png')"
    )
    assert "Acme Rockets" in preview.inner_text()
    button = preview.get_by_role("button", name="Sign in")
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(250, 204, 21)"
    assert button.evaluate("b => getComputedStyle(b).color") == "rgb(0, 0, 0)"
    warning = admin.locator(".contrast-warning")
    measured = contrast("#facc15", PAGE_BACKGROUNDS["sidebar"])
    assert f"Primary colour #facc15 measures {measured:.2f}:1 against the page" in (
        warning.inner_text()
    )
    email = admin.frame_locator("iframe.preview-email")
    assert email.locator("img[alt='Acme Rockets']").count() == 1
    assert rows(PartnerLogo) == []  # a preview only

    admin.click("button:has-text('Save branding')")
    admin.wait_for_selector(".flash >> text=Branding saved")
    [logo] = rows(PartnerLogo)

    user = signed_in(browser, live_server, acme_user.email, PASSWORD)
    user.set_viewport_size({"width": 1280, "height": 900})
    assert user.locator("html").get_attribute("data-base") == "sidebar"
    sidebar = user.locator("aside.sidebar")
    assert sidebar.is_visible() and "Acme Rockets" in sidebar.inner_text()
    image = sidebar.locator("img.brand-logo")
    assert image.get_attribute("src") == f"/branding/logo/{logo.digest}.png"
    assert image.evaluate("i => i.complete && i.naturalWidth") == 300  # served and decoded
    # On a phone the side bar folds back above the page.
    user.set_viewport_size({"width": 390, "height": 844})
    box = sidebar.bounding_box()
    assert box is not None and box["width"] <= 390
    assert user.locator("main").bounding_box()["y"] > box["y"]

    admin.goto(live_server.url("acme", "/admin/users/invite"))
    admin.fill("#email", "newbie@acme.test")
    admin.click("button:has-text('Send invitation')")
    admin.wait_for_selector(".flash")
    [mail] = rows(OutboxMessage, to_address="newbie@acme.test")
    logo_url = live_server.url("acme", f"/branding/logo/{logo.digest}.png")
    assert f'<img src="{logo_url}" alt="Acme Rockets"' in mail.body_html
    inbox = user.context.new_page()
    inbox.set_content(mail.body_html)
    inbox.wait_for_function("document.images[0].complete")
    assert inbox.evaluate("document.images[0].naturalWidth") == 300
    for page in (admin, user):
        page.context.close()
