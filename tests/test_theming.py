"""Themes: each partner's colours and template overrides, never another partner's."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest
from conftest import HostClient, host_client, make_partner
from flask import Flask

from portal.tenancy.models import Theme
from portal.theming import contrast, ink_on, legible_on

SVG = "{http://www.w3.org/2000/svg}"
ICON_RE = re.compile(r'<link rel="icon" href="([^"]*)">')


def favicon(page: str) -> ET.Element:
    """The page's icon as a browser reads it: the attribute, then the data URL, then XML."""
    match = ICON_RE.search(page)
    assert match, "no icon link"
    url = html.unescape(match.group(1))
    prefix = "data:image/svg+xml,"
    assert url.startswith(prefix)
    return ET.fromstring(unquote(url[len(prefix) :]))  # raises unless well-formed XML


def test_partner_colours_reach_the_page(acme_client: HostClient, globex_client: HostClient) -> None:
    acme_page = acme_client.get("/login").text
    globex_page = globex_client.get("/login").text
    assert "--brand: #2563eb" in acme_page
    assert "--brand: #10b981" in globex_page
    assert 'data-theme="dark"' in globex_page and 'data-theme="light"' in acme_page
    # Text on the brand colour is whichever of white or near-black reads on it.
    assert "--brand-ink: #ffffff" in acme_page and "--brand-ink: #000000" in globex_page


@pytest.mark.parametrize(
    "colour", ["#2563eb", "#10b981", "#facc15", "#767676", "#777777", "#ffffff", "#000000"]
)
@pytest.mark.parametrize("page", ["#ffffff", "#13171f"])
def test_brand_colours_are_made_legible(colour: str, page: str) -> None:
    assert contrast(colour, ink_on(colour)) >= 4.5
    text = legible_on(colour, page)
    assert contrast(text, page) >= 4.5
    if contrast(colour, page) >= 4.5:
        assert text == colour  # a colour that already reads is kept as the partner chose it


def test_theme_override_applies_to_its_partner_only(
    acme_client: HostClient, globex_client: HostClient
) -> None:
    # Render globex (midnight override of _brand.html) first, then acme: the cache is keyed
    # by theme, so acme still gets the default brand partial.
    assert "brand-wordmark" in globex_client.get("/login").text
    assert "brand-wordmark" not in acme_client.get("/login").text
    assert "brand-wordmark" in globex_client.get("/login").text


@pytest.mark.parametrize(
    "settings",
    [
        {"primary_color": "red; } body { display:none"},
        {"accent_color": "#12345"},
        {"base": "../../etc"},
        {"brand_name": "x" * 81},
    ],
)
def test_invalid_theme_settings_are_refused(settings: dict) -> None:
    with pytest.raises(ValueError):
        Theme.from_dict(settings)


@pytest.mark.parametrize(
    "brand,initial",
    [("Acme Corp", "A"), ("&Co", "&"), ("<b>old", "<"), ("émile", "É"), ("\u200bHidden", "P")],
)
def test_favicon_is_an_svg_in_the_partners_colour_with_its_initial(
    app: Flask, brand: str, initial: str
) -> None:
    make_partner("brand", brand, Theme(primary_color="#facc15"))
    icon = favicon(host_client(app, "brand").get("/login").text)
    assert icon.tag == f"{SVG}svg"
    assert icon.find(f"{SVG}rect").get("fill") == "#facc15"
    text = icon.find(f"{SVG}text")
    assert text.text == initial
    assert text.get("fill") == ink_on("#facc15")


def test_root_domain_favicon(app: Flask) -> None:
    icon = favicon(host_client(app, None).get("/login").text)
    assert icon.find(f"{SVG}rect").get("fill") == Theme().primary_color
    assert icon.find(f"{SVG}text").text == "P"
