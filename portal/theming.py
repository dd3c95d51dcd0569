"""Per-partner themes: template overrides under templates/themes/<theme>/ and brand colours.

Every template name is looked up as ``@<theme>/<name>``: the `ChoiceLoader` tries the theme's
override first and falls back to the default template. Because the theme is part of the name,
it is also part of Jinja's template cache key, so one partner's override never leaks to another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

from flask import Flask, g, has_request_context
from flask.templating import Environment
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, TemplateNotFound
from jinja2.loaders import split_template_path

from portal.tenancy.models import BASE_THEMES, Theme

PREFIX = "@"


def current_theme() -> Theme:
    site = g.get("site") if has_request_context() else None
    return site.theme if site is not None else Theme()


WHITE, INK = "#ffffff", "#000000"  # black: with white, 4.5:1 on any colour
PAGE_BACKGROUNDS = {"default": WHITE, "midnight": "#13171f"}  # Pico's light and dark pages


def _luminance(colour: str) -> float:
    """Relative luminance (WCAG 2) of a colour like #1a2b3c."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    red, green, blue = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels
    ]
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def ink_on(background: str) -> str:
    """White or near-black, whichever reads better on `background`."""
    return WHITE if contrast(background, WHITE) >= contrast(background, INK) else INK


def _mix(colour: str, other: str, weight: float) -> str:
    """`colour` with `weight` (0 to 1) of `other` mixed in, like CSS color-mix in sRGB."""
    parts = [colour[i : i + 2] for i in (1, 3, 5)], [other[i : i + 2] for i in (1, 3, 5)]
    return "#" + "".join(
        f"{round(int(a, 16) * (1 - weight) + int(b, 16) * weight):02x}"
        for a, b in zip(*parts, strict=True)
    )


def legible_on(colour: str, background: str, minimum: float = 4.5) -> str:
    """`colour`, darkened or lightened just enough to be read as text on `background`."""
    towards = ink_on(background)
    for step in range(11):
        mixed = _mix(colour, towards, step / 10)
        if contrast(mixed, background) >= minimum:
            return mixed
    return towards


FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="{fill}"/>'
    '<text x="16" y="22.5" font-family="sans-serif" font-size="18" font-weight="700"'
    ' text-anchor="middle" fill="{ink}">{initial}</text></svg>'
)


def favicon_initial(brand_name: str) -> str:
    """The first letter of the brand name, upper case; P when there is none to draw."""
    initial = brand_name.strip()[:1].upper()
    # XML refuses control characters, and an invisible one would draw an empty icon.
    return initial if initial and initial.isprintable() else "P"


def favicon_url() -> str:
    """The favicon as a data URL: the brand's initial on its colour (no /favicon.ico request).

    Built here, not in the template: the initial is XML-escaped, then the whole SVG is
    percent-encoded, so the URL holds nothing that HTML escaping would change.
    """
    site = g.get("site") if has_request_context() else None
    colour = current_theme().primary_color
    svg = FAVICON_SVG.format(
        fill=colour,
        ink=ink_on(colour),
        initial=xml_escape(favicon_initial(site.brand_name if site else "")),
    )
    return "data:image/svg+xml," + quote(svg, safe="")


def _split(name: str) -> tuple[str | None, str]:
    if name.startswith(PREFIX) and "/" in name:
        theme, _, rest = name[1:].partition("/")
        return theme, rest
    return None, name


class ThemeOverrideLoader(BaseLoader):
    """Loads ``@<theme>/<name>`` from ``themes/<theme>/<name>`` when that override exists."""

    def __init__(self, themes_dir: Path) -> None:
        self.loader = FileSystemLoader(str(themes_dir))

    def get_source(self, environment: Any, template: str) -> Any:
        theme, name = _split(template)
        if theme not in BASE_THEMES:
            raise TemplateNotFound(template)
        split_template_path(name)  # refuses '..' and other escapes
        return self.loader.get_source(environment, f"{theme}/{name}")


class DefaultLoader(BaseLoader):
    """Loads the default template, ignoring any ``@<theme>/`` prefix."""

    def __init__(self, templates_dir: Path) -> None:
        self.loader = FileSystemLoader(str(templates_dir))

    def get_source(self, environment: Any, template: str) -> Any:
        return self.loader.get_source(environment, _split(template)[1])

    def list_templates(self) -> list[str]:
        return self.loader.list_templates()


class ThemedEnvironment(Environment):
    """Prefixes every lookup (render, extends, include) with the request's theme."""

    def get_template(self, name: Any, parent: Any = None, globals: Any = None) -> Any:
        if isinstance(name, str) and not name.startswith(PREFIX):
            name = f"{PREFIX}{current_theme().base}/{name}"
        return super().get_template(name, parent, globals)


def init_app(app: Flask, templates_dir: Path) -> None:
    app.jinja_loader = ChoiceLoader(
        [ThemeOverrideLoader(templates_dir / "themes"), DefaultLoader(templates_dir)]
    )
    app.jinja_env.globals["current_theme"] = current_theme
    app.jinja_env.globals.update(
        ink_on=ink_on,
        legible_on=legible_on,
        page_background=PAGE_BACKGROUNDS,
        favicon_url=favicon_url,
    )
