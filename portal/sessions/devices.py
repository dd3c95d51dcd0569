"""Human device labels ("Firefox on Windows") from user-agent strings, via ua-parser."""

from __future__ import annotations

from functools import lru_cache

import ua_parser
from ua_parser import parse


@lru_cache(maxsize=1024)
def device_label(user_agent: str | None) -> str:
    """A short label for a session list; 'Unknown device' when nothing is recognisable."""
    if not user_agent:
        return "Unknown device"
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else None
    system = result.os.family if result.os else None
    device = result.device.family if result.device and result.device.family != "Other" else None
    if browser and system:
        label = f"{browser} on {system}"
    else:
        label = browser or system or "Unknown device"
    if device and device not in label and not device.startswith("Generic"):
        label = f"{label} ({device})"
    return label


def load_rules() -> None:
    """Read ua-parser's rules now rather than on the first request that names a device: a
    third of a second, paid by that request in every new worker (gunicorn replaces each after
    `max_requests`)."""
    _ = ua_parser.parser  # the module builds its parser on first access
