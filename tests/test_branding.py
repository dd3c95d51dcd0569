"""Branding self-service: uploads, the preview, contrast, themes, isolation, audit, emails."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PASSWORD,
    HostClient,
    host_client,
    logged_in,
    make_partner,
    make_user,
    rows,
    set_feature,
)
from flask import Flask
from PIL import Image
from racing import TRIES, race, results, skip_unless_racing

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.branding.images import MAX_BYTES
from portal.branding.models import PartnerLogo
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.tenancy.models import Partner, PartnerStatus, Theme
from portal.theming import PAGE_BACKGROUNDS, contrast, legible_on
from portal.users.models import User

FORM = {
    "brand_name": "Acme Rockets",
    "base": "default",
    "primary_color": "#2563eb",
    "accent_color": "#0f172a",
    "support_email": "",
    "support_url": "",
}


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (120, 40), **save: Any) -> bytes:
    out = io.BytesIO()
    mode = "RGB" if fmt == "JPEG" else "RGBA"
    Image.new(mode, size, (200, 30, 30, 255)[: len(mode)]).save(out, format=fmt, **save)
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny, valid PNG header that declares an enormous image (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * 3 * 16
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(row * 16))
        + png_chunk(b"IEND", b"")
    )


def polyglot() -> bytes:
    """A real PNG carrying HTML in a text chunk and after its end: a browser sniffing it as
    HTML would run the script."""
    png = image_bytes()
    script = b"<html><script>alert(document.cookie)</script></html>"
    end = png.rindex(b"IEND") - 4
    return png[:end] + png_chunk(b"tEXt", b"Comment\x00" + script) + png[end:] + script


def save(client: HostClient, form: dict[str, Any] | None = None, **files: Any) -> Any:
    data: dict[str, Any] = {**FORM, **(form or {})}
    for name, (content, filename) in files.items():
        data[name] = (io.BytesIO(content), filename)
    response = client.post_form(
        "/admin/settings/branding/", data, content_type="multipart/form-data"
    )
    # The test client spools a large body to a temporary file and leaves it open.
    response.request.environ["wsgi.input"].close()
    return response


@pytest.fixture
def admin(app: Flask, acme_admin: User) -> HostClient:
    return logged_in(app, acme_admin)


def stored_theme(partner: Partner) -> Theme:
    db.session.refresh(partner)
    return partner.theme


# --- uploads -------------------------------------------------------------------------------


def test_a_logo_is_stored_re_encoded_and_served_from_the_partners_host(
    admin: HostClient, acme: Partner
) -> None:
    upload = image_bytes("JPEG", (2000, 500), quality=90, comment=b"from the camera")
    response = save(admin, logo=(upload, "logo.jpg"))
    assert response.status_code == 302, response.text
    assert "Branding saved" in admin.get(response.headers["Location"]).text
    [logo] = rows(PartnerLogo)
    assert logo.partner_id == acme.id
    assert logo.data != upload and logo.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"from the camera" not in logo.data
    assert (logo.width, logo.height) == (960, 240)  # shrunk to fit 960 x 320
    assert logo.digest == hashlib.sha256(logo.data).hexdigest()
    theme = stored_theme(acme)
    assert theme.logo == logo.digest and theme.brand_name == "Acme Rockets"
    url = f"/branding/logo/{logo.digest}.png"
    assert f'src="{url}"' in admin.get("/").text
    # Anyone may load it (the sign-in page shows it), with long caching and a fixed type.
    served = host_client(admin.application, "acme").get(url)
    assert served.status_code == 200 and served.data == logo.data
    assert served.mimetype == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert served.headers["ETag"] == f'"{logo.digest}"'
    again = host_client(admin.application, "acme").get(
        url, headers={"If-None-Match": f'"{logo.digest}"'}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "content,filename,message",
    [
        (image_bytes("GIF"), "logo.gif", "Upload a PNG, JPEG or WebP image"),
        (image_bytes("GIF"), "logo.png", "This file is not a PNG, JPEG or WebP image."),
        (image_bytes("BMP"), "logo.jpg", "This file is not a PNG, JPEG or WebP image."),
        (b"MZ\x90\x00 this is a program, not a picture", "logo.png", "not a PNG, JPEG or WebP"),
        (b"%PDF-1.7\n1 0 obj\n", "logo.webp", "not a PNG, JPEG or WebP"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "logo.svg",
            "SVG logos are not accepted",
        ),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            "logo.png",
            "SVG logos are not accepted",
        ),
        (image_bytes() + b"\x00" * MAX_BYTES, "logo.png", "the largest accepted is 1.0 MB"),
        (bomb_png(), "logo.png", "decompression bomb"),
        (bomb_png(5_000, 4_000), "logo.png", "decompression bomb"),  # only the warning level
        (bomb_png(4_001, 10), "logo.png", "at most 4000 pixels a side"),
        (image_bytes()[:60], "logo.png", "damaged or incomplete"),
        (b"", "logo.png", "The logo file is empty."),
    ],
    ids=[
        "gif",
        "gif-named-png",
        "bmp-named-jpg",
        "program-named-png",
        "pdf-named-webp",
        "svg",
        "svg-named-png",
        "oversize",
        "bomb",
        "bomb-warning",
        "too-wide",
        "truncated",
        "empty",
    ],
)
def test_uploads_that_are_not_an_accepted_image_are_refused_in_place(
    admin: HostClient, acme: Partner, content: bytes, filename: str, message: str
) -> None:
    before = stored_theme(acme)
    response = save(admin, {"brand_name": "Changed too"}, logo=(content, filename))
    assert response.status_code == 422
    assert message in response.text
    assert 'id="logo-error"' in response.text and 'aria-invalid="true"' in response.text
    assert 'value="Changed too"' in response.text  # what was typed stays in the form
    # Nothing half-written: no logo, the theme as it was, nothing audited.
    assert rows(PartnerLogo) == []
    assert stored_theme(acme) == before
    assert rows(AuditEvent, action="branding.update") == []


def test_a_polyglot_is_stored_as_the_plain_image_it_also_is(
    admin: HostClient, acme: Partner
) -> None:
    upload = polyglot()
    assert save(admin, logo=(upload, "logo.png")).status_code == 302
    [logo] = rows(PartnerLogo)
    assert b"<script" not in logo.data and b"<html" not in logo.data
    assert logo.data != upload
    assert Image.open(io.BytesIO(logo.data)).format == "PNG"
    served = host_client(admin.application, "acme").get(f"/branding/logo/{logo.digest}.png")
    assert served.mimetype == "image/png" and b"<script" not in served.data
    assert "sandbox" in served.headers["Content-Security-Policy"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_each_accepted_format_becomes_a_png(admin: HostClient, fmt: str) -> None:
    suffix = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}[fmt]
    assert save(admin, logo=(image_bytes(fmt), f"logo.{suffix}")).status_code == 302
    [logo] = rows(PartnerLogo)
    assert Image.open(io.BytesIO(logo.data)).format == "PNG"


def test_replacing_and_removing_the_logo(admin: HostClient, acme: Partner) -> None:
    save(admin, logo=(image_bytes(size=(50, 50)), "a.png"))
    [first] = rows(PartnerLogo)
    first_digest = first.digest
    old_url = f"/branding/logo/{first_digest}.png"
    assert save(admin, logo=(image_bytes(size=(80, 20)), "b.png")).status_code == 302
    [second] = rows(PartnerLogo)
    assert second.digest != first_digest
    assert admin.get(old_url).status_code == 404  # only the current logo is served
    response = save(admin, {"remove_logo": "1"})
    assert response.status_code == 302
    assert rows(PartnerLogo) == [] and stored_theme(acme).logo == ""
    assert 'class="brand-logo"' not in admin.get("/").text


# --- other fields ----------------------------------------------------------------------------


def test_every_wrong_field_is_reported_at_once(admin: HostClient, acme: Partner) -> None:
    before = stored_theme(acme)
    response = save(
        admin,
        {
            "brand_name": "x" * 81,
            "primary_color": "red; } body { display:none",
            "accent_color": "#12345",
            "base": "../../etc",
            "support_email": "not an address",
            "support_url": "javascript:alert(1)",
        },
    )
    assert response.status_code == 422
    for field in ("brand_name", "primary_color", "accent_color", "base", "support_email"):
        assert f'id="{field}-error"' in response.text, field
    assert "Support page: enter an address starting with https://." in response.text
    assert stored_theme(acme) == before


def test_saving_changes_only_the_partner_of_the_host(
    admin: HostClient, acme: Partner, globex: Partner
) -> None:
    """Ids, slugs or theme fields in the form name no partner: the host does."""
    globex_before = stored_theme(globex)
    response = save(
        admin,
        {
            "primary_color": "#AA0000",
            "partner_id": str(globex.id),
            "partner": "globex",
            "slug": "globex",
            "logo_digest": "0" * 64,
        },
    )
    assert response.status_code == 302
    assert stored_theme(acme).primary_color == "#aa0000"
    assert stored_theme(globex) == globex_before


def test_another_partners_admin_cannot_reach_the_branding(
    app: Flask, acme: Partner, globex: Partner, acme_admin: User
) -> None:
    acme_session = logged_in(app, acme_admin)
    token = acme_session.get_cookie("portal_auth", domain="acme.localhost").value
    intruder = host_client(app, "globex")
    intruder.set_cookie("portal_auth", token, domain="globex.localhost")
    before = stored_theme(globex)
    for path in ("/admin/settings/branding/", "/admin/settings/branding/reset"):
        response = intruder.post_form(path, {**FORM, "primary_color": "#000000"})
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert stored_theme(globex) == before


def test_a_partners_logo_does_not_serve_on_another_host(
    admin: HostClient, app: Flask, acme: Partner, globex: Partner
) -> None:
    save(admin, logo=(image_bytes(), "logo.png"))
    [logo] = rows(PartnerLogo)
    path = f"/branding/logo/{logo.digest}.png"
    assert host_client(app, "acme").get(path).status_code == 200
    foreign = host_client(app, "globex").get(path)
    assert foreign.status_code == 404 and foreign.headers["Cache-Control"] == "no-store"
    assert host_client(app, None).get(path).status_code == 404
    for digest in ("0" * 64, logo.digest.upper(), "../" + logo.digest[3:]):
        assert host_client(app, "acme").get(f"/branding/logo/{digest}.png").status_code == 404


def test_support_contact_on_error_and_unavailable_pages(
    admin: HostClient, app: Flask, acme: Partner
) -> None:
    save(
        admin,
        {"support_email": "help@acme.test", "support_url": "https://help.acme.test/portal"},
    )
    missing = host_client(app, "acme").get(f"/branding/logo/{'0' * 64}.png")
    assert missing.status_code == 404
    assert '<a href="mailto:help@acme.test">help@acme.test</a>' in missing.text
    assert 'href="https://help.acme.test/portal"' in missing.text
    acme.status = PartnerStatus.SUSPENDED
    db.session.commit()
    unavailable = host_client(app, "acme").get("/login")
    assert unavailable.status_code == 403 and "is unavailable" in unavailable.text
    assert "mailto:help@acme.test" in unavailable.text


def test_no_support_contact_line_without_one(app: Flask, acme: Partner) -> None:
    missing = host_client(app, "acme").get(f"/branding/logo/{'0' * 64}.png")
    assert missing.status_code == 404 and "Need help?" not in missing.text


# --- preview, contrast, reset, audit ---------------------------------------------------------


def test_the_preview_draws_the_form_and_saves_nothing(admin: HostClient, acme: Partner) -> None:
    before = stored_theme(acme)
    token = admin.csrf_token("/admin/settings/branding/")
    response = admin.post(
        "/admin/settings/branding/preview",
        data={
            **FORM,
            "brand_name": "Preview Only",
            "primary_color": "#facc15",
            "base": "sidebar",
            "logo": (io.BytesIO(image_bytes()), "logo.png"),
            "csrf_token": token,
        },
        content_type="multipart/form-data",
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    fragment = response.text
    assert "<html" not in fragment.split("srcdoc")[0]  # a fragment, not a page
    assert "--brand: #facc15" in fragment and 'data-base="sidebar"' in fragment
    assert "Preview Only" in fragment and 'src="data:image/png;base64,' in fragment
    assert "srcdoc=" in fragment and "Accept the invitation" in fragment  # the email
    assert stored_theme(acme) == before
    assert rows(PartnerLogo) == [] and rows(AuditEvent, action="branding.update") == []


def test_the_preview_shows_what_is_wrong_and_keeps_the_rest(admin: HostClient) -> None:
    token = admin.csrf_token("/admin/settings/branding/")
    response = admin.post(
        "/admin/settings/branding/preview",
        data={**FORM, "primary_color": "nope", "accent_color": "#123456", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "Primary colour: enter a colour like #1a2b3c." in response.text
    assert "--brand-accent: #123456" in response.text


def test_a_low_contrast_colour_is_saved_with_a_measured_warning(
    admin: HostClient, acme: Partner
) -> None:
    assert save(admin, {"primary_color": "#facc15"}).status_code == 302
    page = admin.get("/admin/settings/branding/").text
    ratio = contrast("#facc15", PAGE_BACKGROUNDS["default"])
    shown = legible_on("#facc15", PAGE_BACKGROUNDS["default"])
    assert ratio < 4.5
    assert f"Primary colour #facc15 measures {ratio:.2f}:1 against the page" in page
    assert f"as {shown} ({contrast(shown, PAGE_BACKGROUNDS['default']):.2f}:1)" in page
    # The existing correction is what the pages use: links in the darker shade.
    assert f"--brand-text: {shown}" in page and "--brand-ink: #000000" in page


def test_no_warning_for_colours_that_read(admin: HostClient) -> None:
    page = admin.get("/admin/settings/branding/").text
    assert "contrast-warning" not in page


@pytest.mark.parametrize("base", ["default", "midnight", "sidebar"])
@pytest.mark.parametrize("colour", ["#2563eb", "#facc15", "#10b981", "#777777", "#ffffff"])
def test_text_in_brand_colours_reads_on_every_theme(base: str, colour: str) -> None:
    page = PAGE_BACKGROUNDS[base]
    assert contrast(legible_on(colour, page), page) >= 4.5


def test_the_sidebar_pages_text_colours_read_on_its_paper() -> None:
    """The sidebar theme's own page colour: Pico's muted text, and the error text its CSS
    sets, both at least 4.5:1 on it (the colours as in static/css/portal.css and Pico)."""
    css = (Path(__file__).parent.parent / "static" / "css" / "portal.css").read_text()
    paper = re.search(r'\[data-base="sidebar"\] \{ --pico-background-color: (#\w{6})', css)
    error = re.search(r'\[data-base="sidebar"\] \.field-error \{ color: (#\w{6})', css)
    assert paper and error and paper.group(1) == PAGE_BACKGROUNDS["sidebar"]
    assert contrast("#646b79", paper.group(1)) >= 4.5  # Pico 2.1.1 light --pico-muted-color
    assert contrast(error.group(1), paper.group(1)) >= 4.5


def test_changes_and_reset_are_audited(admin: HostClient, acme: Partner) -> None:
    save(admin, {"primary_color": "#aa0000", "support_email": "help@acme.test"})
    [event] = rows(AuditEvent, action="branding.update")
    assert event.partner_id == acme.id and event.actor_label == "root@acme.test"
    assert event.details["before"] == {
        "brand_name": "",
        "primary_color": "#2563eb",
        "support_email": "",
    }
    assert event.details["after"]["primary_color"] == "#aa0000"
    save(admin, {"primary_color": "#aa0000", "support_email": "help@acme.test"})
    assert len(rows(AuditEvent, action="branding.update")) == 1  # nothing changed: no event
    response = admin.post_form("/admin/settings/branding/reset")
    assert response.status_code == 302
    assert "Branding reset" in admin.get(response.headers["Location"]).text
    assert stored_theme(acme) == Theme()
    [reset] = rows(AuditEvent, action="branding.reset")
    assert reset.details["before"]["primary_color"] == "#aa0000"


def test_reset_removes_the_logo(admin: HostClient, acme: Partner) -> None:
    save(admin, {"base": "midnight"}, logo=(image_bytes(), "logo.png"))
    admin.post_form("/admin/settings/branding/reset")
    assert rows(PartnerLogo) == [] and stored_theme(acme) == Theme()


def test_only_admins_manage_branding(app: Flask, acme: Partner, acme_user: User) -> None:
    client = logged_in(app, acme_user)
    assert client.get("/admin/settings/branding/").status_code == 403
    assert client.post_form("/admin/settings/branding/preview", FORM).status_code == 403


# --- themes and their layouts ----------------------------------------------------------------


def layout_of(page: str) -> str:
    if 'class="sidebar-layout"' in page:
        return "sidebar"
    return "midnight" if "brand-wordmark" in page else "default"


def test_three_themes_render_three_layouts_at_the_same_time(app: Flask) -> None:
    """One app instance, one template cache: each partner's theme is part of the cache key."""
    for slug, base in (("one", "default"), ("two", "midnight"), ("three", "sidebar")):
        partner = make_partner(slug, slug.title(), Theme(base=base))
        make_user(partner, f"admin@{slug}.test", role=Role.ADMIN)
    clients = {}
    for slug in ("one", "two", "three"):
        clients[slug] = host_client(app, slug)
        assert clients[slug].login(f"admin@{slug}.test").status_code == 302
    expected = {"one": "default", "two": "midnight", "three": "sidebar"}
    seen: list[tuple[str, str, str]] = []
    barrier = threading.Barrier(3)

    def browse(slug: str) -> None:
        barrier.wait()
        for path in (
            "/",
            "/admin/users/",
            "/account/profile",
            f"/branding/logo/{'0' * 64}.png",
        ) * 5:
            page = clients[slug].get(path).text
            seen.append((slug, layout_of(page), path))

    threads = [threading.Thread(target=browse, args=(s,)) for s in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == 60
    assert [s for s in seen if s[1] != expected[s[0]]] == []
    page = clients["three"].get("/").text
    assert 'data-base="sidebar"' in page and '<aside class="sidebar"' in page


def test_a_theme_changed_by_its_admin_applies_on_the_next_request(
    admin: HostClient, globex_client: HostClient
) -> None:
    assert layout_of(admin.get("/").text) == "default"
    save(admin, {"base": "sidebar"})
    assert layout_of(admin.get("/").text) == "sidebar"
    assert layout_of(globex_client.get("/login").text) == "midnight"


# --- emails ----------------------------------------------------------------------------------


def test_emails_carry_the_logo_colours_and_support_contact(
    admin: HostClient, app: Flask, acme: Partner, acme_user: User
) -> None:
    save(
        admin,
        {"primary_color": "#aa0000", "accent_color": "#003300", "support_email": "help@acme.test"},
        logo=(image_bytes(), "logo.png"),
    )
    [logo] = rows(PartnerLogo)
    logo_url = f"http://acme.localhost/branding/logo/{logo.digest}.png"
    set_feature(acme, "self_signup")
    admin.post_form("/admin/users/invite", {"email": "new@acme.test", "role": "basic"})
    visitor = host_client(app, "acme")
    visitor.post_form("/password/forgot", {"email": acme_user.email})
    visitor.post_form("/signup", {"email": "walkin@acme.test", "display_name": "Walk In"})
    user = logged_in(app, acme_user)
    user.post_form("/account/email", {"new_email": "alice.new@acme.test", "password": PASSWORD})
    mails = rows(OutboxMessage)
    kinds = {m.to_address for m in mails}
    assert {"new@acme.test", acme_user.email, "walkin@acme.test", "alice.new@acme.test"} <= kinds
    for mail in mails:
        assert f'<img src="{logo_url}" alt="Acme Rockets"' in mail.body_html, mail.subject
        assert "background:#003300" in mail.body_html and "#aa0000" in mail.body_html
        assert "mailto:help@acme.test" in mail.body_html
    # The address in the email serves the logo.
    served = host_client(app, "acme").get(logo_url.removeprefix("http://acme.localhost"))
    assert served.status_code == 200


def test_every_email_template_uses_the_branded_layout() -> None:
    mail = Path(__file__).parent.parent / "templates" / "mail"
    for template in mail.glob("*.html"):
        if not template.name.startswith("_"):
            assert '{% extends "mail/_layout.html" %}' in template.read_text(), template.name


# --- the operator console --------------------------------------------------------------------


def test_operators_see_and_reset_a_partners_branding(
    admin: HostClient, app: Flask, acme: Partner
) -> None:
    save(admin, {"primary_color": "#aa0000"}, logo=(image_bytes(), "logo.png"))
    [logo] = rows(PartnerLogo)
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    console = host_client(app, None)
    assert console.login("op@portal.test").status_code == 302
    assert f"/operator/partners/{acme.id}/branding" in console.get("/operator/").text
    page = console.get(f"/operator/partners/{acme.id}/branding").text
    assert "Acme Rockets" in page and "#aa0000" in page
    # The console keeps its own look: the partner's branding is shown, not worn.
    assert f"--brand: {Theme().primary_color}" in page and "powered by" not in page
    assert f"http://acme.localhost/branding/logo/{logo.digest}.png" in page
    response = console.post_form(f"/operator/partners/{acme.id}/branding")
    assert response.status_code == 302
    assert "back to the portal&#39;s default" in console.get(response.headers["Location"]).text
    assert stored_theme(acme) == Theme() and rows(PartnerLogo) == []
    [in_partner] = rows(AuditEvent, action="branding.reset")
    assert in_partner.partner_id == acme.id and in_partner.actor_label == "op@portal.test"
    [platform] = rows(AuditEvent, action="partner.branding_reset")
    assert platform.partner_id is None
    assert console.get("/operator/partners/999/branding").status_code == 404


# --- two admins at once ----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(TRIES))
def test_two_logo_uploads_at_once_leave_one_logo_that_the_theme_names(
    data: Flask, make_app, acme: Partner, acme_admin: User, attempt: int
) -> None:
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    tokens = [c.csrf_token("/admin/settings/branding/") for c in clients]
    uploads = [image_bytes(size=(60, 20)), image_bytes(size=(90, 30))]

    def post(index: int) -> Any:
        form = {
            **FORM,
            "csrf_token": tokens[index],
            "logo": (io.BytesIO(uploads[index]), "logo.png"),
        }
        return clients[index].post(
            "/admin/settings/branding/", data=form, content_type="multipart/form-data"
        )

    responses = results(race(apps, post))
    assert sorted(r.status_code for r in responses) == [302, 302]
    [logo] = rows(PartnerLogo)
    assert stored_theme(acme).logo == logo.digest
    assert len(rows(AuditEvent, action="branding.update")) == 2
