"""Request bodies are bounded: MAX_CONTENT_LENGTH everywhere, more only where a view says so.

The limit is set before any hook reads the body (the CSRF check is the first), so a body that
announces more is refused with 413 before a byte of it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request

V = TypeVar("V", bound=Callable[..., Any])


def accepts_bodies_up_to(limit: int) -> Callable[[V], V]:
    """Mark a view (a logo upload, say) that takes bodies of up to `limit` bytes."""

    def mark(view: V) -> V:
        view.max_content_length = limit  # type: ignore[attr-defined]
        return view

    return mark


def apply_view_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """url_value_preprocessor: these run before every before_request hook."""
    view = current_app.view_functions.get(endpoint) if endpoint else None
    limit = getattr(view, "max_content_length", None)
    if limit is not None:
        request.max_content_length = limit


def init_app(app: Flask) -> None:
    app.url_value_preprocessor(apply_view_limit)
