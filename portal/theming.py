"""Per-partner themes: template overrides under templates/themes/<theme>/ and brand colours.

Every template name is looked up as ``@<theme>/<name>``: the `ChoiceLoader` tries the theme's
override first and falls back to the default template. Because the theme is part of the name,
it is also part of Jinja's template cache key, so one partner's override never leaks to another.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

from flask import Flask, g, has_request_context, url_for
from flask.templating import Environment
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, TemplateNotFound
from jinja2.loaders import split_template_path

from portal.tenancy.models import BASE_THEMES, Theme
from portal.text import counted

PREFIX = "@"


def current_theme() -> Theme:
    site = g.get("site") if has_request_context() else None
    return site.theme if site is not None else Theme()


WHITE, INK = "#ffffff", "#000000"  # black: with white, 4.5:1 on any colour


@dataclass(frozen=True)
class BaseTheme:
    """What a shipped base theme is: its name for people, its colour scheme and page colour."""

    label: str
    description: str
    scheme: str  # Pico's data-theme: light or dark
    background: str  # the page's background, which text in the brand colour must read on


THEMES = {
    "default": BaseTheme("Default", "Light pages, navigation across the top.", "light", WHITE),
    "midnight": BaseTheme("Midnight", "Dark pages, the brand as a wordmark.", "dark", "#13171f"),
    "sidebar": BaseTheme(
        "Sidebar",
        "Warm paper-coloured pages, navigation down the left side, serif headings.",
        "light",
        "#f6f3ec",
    ),
}
PAGE_BACKGROUNDS = {name: theme.background for name, theme in THEMES.items()}
MINIMUM_CONTRAST = 4.5  # WCAG 2 AA for ordinary text


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


@lru_cache(maxsize=1024)
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


@lru_cache(maxsize=1024)
def legible_on(colour: str, background: str, minimum: float = 4.5) -> str:
    """`colour`, darkened or lightened just enough to be read as text on `background`."""
    towards = ink_on(background)
    for step in range(11):
        mixed = _mix(colour, towards, step / 10)
        if contrast(mixed, background) >= minimum:
            return mixed
    return towards


@dataclass(frozen=True)
class ContrastNote:
    """How one brand colour reads on the theme's page, and what the portal does about it."""

    label: str
    colour: str
    on_page: float  # the colour as text on the page's background
    ink: str  # the text colour drawn on the colour (white or black)
    ink_contrast: float
    shown_as: str  # the colour text in this colour is drawn in
    shown_contrast: float

    @property
    def warning(self) -> bool:
        return self.on_page < MINIMUM_CONTRAST


def contrast_notes(theme: Theme) -> list[ContrastNote]:
    """The measured contrast of both brand colours on `theme`'s page, and the corrections."""
    page = PAGE_BACKGROUNDS[theme.base]
    notes = []
    for label, colour in (("Primary", theme.primary_color), ("Accent", theme.accent_color)):
        ink, shown = ink_on(colour), legible_on(colour, page)
        notes.append(
            ContrastNote(
                label,
                colour,
                round(contrast(colour, page), 2),
                ink,
                round(contrast(colour, ink), 2),
                shown,
                round(contrast(shown, page), 2),
            )
        )
    return notes


def logo_url(theme: Theme | None = None, *, external: bool = False) -> str | None:
    """The address of the partner's logo on its own host (content-hashed), or None."""
    if theme is None:
        theme = current_theme()
    if not theme.logo:
        return None
    return url_for("branding.logo", digest=theme.logo, _external=external)


def support_contact() -> Theme | None:
    """The theme whose support contact the error and "unavailable" pages show, if any."""
    if not has_request_context():
        return None
    site = g.get("site")
    theme = site.theme if site is not None else g.get("unavailable_theme")
    if theme is None or not (theme.support_email or theme.support_url):
        return None
    return theme


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
    return _favicon(current_theme().primary_color, site.brand_name if site else "")


@lru_cache(maxsize=1024)
def _favicon(colour: str, brand_name: str) -> str:
    svg = FAVICON_SVG.format(
        fill=colour, ink=ink_on(colour), initial=xml_escape(favicon_initial(brand_name))
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


# What the templates directory holds: pages and mails. Anything else there (an editor's swap
# file) is no template, and compiling it would stop the server from starting (portal/warmup.py).
TEMPLATE_SUFFIXES = (".html", ".txt")


def every_template(app: Flask) -> list[str]:
    """Each template as a request of each base theme names it (`@<theme>/<name>`): the theme
    is part of the name, so each theme's copy is compiled and cached on its own."""
    loader = app.jinja_loader
    assert isinstance(loader, ChoiceLoader)  # init_app: overrides, then the defaults
    names = sorted(
        name
        for name in loader.loaders[-1].list_templates()
        if name.endswith(TEMPLATE_SUFFIXES) and not name.startswith("themes/")
    )
    return [f"{PREFIX}{theme}/{name}" for theme in BASE_THEMES for name in names]


def init_app(app: Flask, templates_dir: Path) -> None:
    app.jinja_loader = ChoiceLoader(
        [ThemeOverrideLoader(templates_dir / "themes"), DefaultLoader(templates_dir)]
    )
    app.jinja_env.globals["current_theme"] = current_theme
    app.jinja_env.globals.update(
        ink_on=ink_on,
        legible_on=legible_on,
        page_background=PAGE_BACKGROUNDS,
        base_themes=THEMES,
        favicon_url=favicon_url,
        logo_url=logo_url,
        support_contact=support_contact,
    )
    app.jinja_env.filters["counted"] = counted
