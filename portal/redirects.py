"""Where a request may send the browser next: local paths only, never another host."""

from __future__ import annotations

from urllib.parse import urlsplit


def local_path(target: str | None, default: str, prefix: str = "/") -> str:
    """`target` when it is a path on this host under `prefix`, else `default`.

    Control characters and spaces are refused outright: browsers and Werkzeug drop tabs and
    newlines from a Location (so `/\\t/evil.com` would become `//evil.com`), and a newline in a
    header is an error, not a redirect.
    """
    if not target or "\\" in target or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return default
    return target if target.startswith(prefix) else default
