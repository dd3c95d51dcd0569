"""Per-partner themes: template overrides under templates/themes/<theme>/ and brand colours.

Every template name is looked up as ``@<theme>/<name>``: the `ChoiceLoader` tries the theme's
override first and falls back to the default template. Because the theme is part of the name,
it is also part of Jinja's template cache key, so one partner's override never leaks to another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, g, has_request_context
from flask.templating import Environment
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, TemplateNotFound
from jinja2.loaders import split_template_path

from portal.tenancy.models import BASE_THEMES, Theme

PREFIX = "@"


def current_theme() -> Theme:
    partner = g.get("partner") if has_request_context() else None
    return partner.theme if partner is not None else Theme()


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
