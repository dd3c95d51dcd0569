"""View decorators for support: pages for agents only, and what an agent acting as a user may
never do (DESIGN §8)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g
from flask_login import current_user

from portal.support.services import ImpersonationView, support_problem


def impersonating() -> ImpersonationView | None:
    """The support session this request runs in, if any (the principal is loaded first)."""
    current_user._get_current_object()  # the session check sets g.impersonation
    return g.get("impersonation")


def support_agents_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 unless the signed-in user holds the support capability, and acts as themselves.

    The capability alone decides, not a role permission: an admin grants it person by person
    (`users.support`), and admins themselves cannot hold it. Pair with
    `@feature("impersonation")`, which answers 404 while the partner has support off.
    """

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        acting = impersonating()
        if acting is not None:
            abort(
                403,
                f"You are acting as {acting.target_email}. Stop that support session (the "
                "Stop button at the top of the page) before using the support pages again.",
            )
        problem = support_problem(current_user._get_current_object())
        if problem is not None:
            abort(403, problem)
        return view(*args, **kwargs)

    wrapped.required_capability = "support"  # type: ignore[attr-defined]
    return wrapped


def owner_only(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """403 while a support agent acts as the user: `what` only the account's owner may do
    (password, email address, sessions, linked identities, deleting the account)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            acting = impersonating()
            if acting is not None:
                abort(
                    403,
                    f"While acting as {acting.target_email}, support cannot {what}: only "
                    "they can, signed in as themselves.",
                )
            return view(*args, **kwargs)

        wrapped.owner_only = what  # type: ignore[attr-defined]
        return wrapped

    return decorator
