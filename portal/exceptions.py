"""The one family of refusals: a message a person can act on, and the HTTP status that fits.

Services raise these and never commit; pages, htmx fragments, the command line (and later the
API) each render them their own way (`portal/web.py`, `portal/commands.py`).
"""

from __future__ import annotations

from flask import g, has_request_context


class PortalError(Exception):
    """A refusal the person asking can understand.

    `status` is what the web answers with (409 by default: understood, but not allowed in the
    current state). `headers` are extra response headers an htmx caller can act on.
    """

    status: int = 409

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if has_request_context():  # the request's log line names what was refused (failed)
            g.setdefault("refusals", []).append(self)

    @property
    def headers(self) -> dict[str, str]:
        return {}


class Invalid(PortalError):
    """Input that cannot be used as it is (a form error)."""

    status = 422


class Forbidden(PortalError):
    """The actor may not do this."""

    status = 403


class NotFound(PortalError):
    """Missing, or another partner's: the same answer."""

    status = 404


class Conflict(PortalError):
    """Someone else changed the same thing at the same time; looking again and retrying helps."""

    status = 409

    DEFAULT = "This was changed by someone else at the same time. Reload the page and try again."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.DEFAULT)
