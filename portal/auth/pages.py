"""The sign-in and sign-out pages shared by partner hosts and the operator console."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask.globals import request_ctx
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response

from portal.auth.cookies import clear_auth_cookie, set_auth_cookie
from portal.auth.forms import LoginForm
from portal.auth.guards import principal_kind
from portal.auth.services import AccountDeactivated, LoginFailed, LoginResult
from portal.auth.throttle import LoginThrottled
from portal.redirects import local_path
from portal.sessions.services import ClientInfo, SessionLimitReached


def client_info() -> ClientInfo:
    return ClientInfo(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def safe_next(default: str) -> str:
    """A local path from `?next=`, never another host, and only a page one can open (GET): a
    form's address would end on a "method not allowed" page."""
    target = local_path(request.args.get("next", ""), default)
    if target == default:
        return default
    adapter = request_ctx.url_adapter
    try:
        if adapter is not None:
            adapter.match(urlsplit(target).path, method="GET")
    except RequestRedirect:
        return target  # the same page with a slash added
    except HTTPException:
        return default
    return target


LOGIN_REFUSALS: dict[type[Exception], int] = {
    LoginFailed: 422,
    AccountDeactivated: 403,
    LoginThrottled: 429,
    SessionLimitReached: 409,
}


def password_login_page(
    *,
    kind: str,
    home: str,
    template: str,
    login: Callable[..., LoginResult],
    context: dict[str, Any] | None = None,
) -> tuple[str, int] | Response:
    """The login page shared by partner users and operators; only the account lookup differs."""
    if principal_kind() == kind:
        return redirect(safe_next(url_for(home)))
    form = LoginForm()
    error, status = None, 200
    if request.method == "GET" and not form.email.data:
        # Just accepted an invitation, confirmed a sign-up or reset a password: the address
        # is filled in, the password is what is left to type.
        form.email.data = session.pop("sign_in_as", None)
    if form.validate_on_submit():
        try:
            result = login(
                form.email.data, form.password.data, client_info(), remember=form.remember.data
            )
        except tuple(LOGIN_REFUSALS) as exc:
            error, status = str(exc), LOGIN_REFUSALS[type(exc)]
            context = {**(context or {}), "login_failed": isinstance(exc, LoginFailed)}
        else:
            session.clear()  # a fresh CSRF secret for the new login, nothing carried over
            response = redirect(safe_next(url_for(home)))
            set_auth_cookie(response, result.token, expires=result.remember_until)
            return response
    elif form.errors:
        status = 422
    return render_template(template, form=form, error=error, **(context or {})), status


def end_login(logout: Callable[[], None], login_endpoint: str) -> Response:
    logout()
    session.clear()
    flash("You have signed out.", "info")
    response = redirect(url_for(login_endpoint))
    clear_auth_cookie(response)
    return response
