"""Flask-Login integration: the principal comes from the server-side session record.

This is the per-request session check. On a partner host the cookie names a session record;
a support session (a support agent acting as a user, DESIGN §8) is checked further on every
request: if it is over, its end is recorded and the agent is back in their own session, which
the browser kept in a second cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from flask import Flask, Request, flash, g
from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.wrappers import Response

from portal import unit_of_work
from portal.auth.cookies import (
    clear_auth_cookie,
    clear_return_cookie,
    read_return_token,
    read_token,
    set_auth_cookie,
)
from portal.auth.signout import ended_reason, operator_ended_reason
from portal.extensions import db, login_manager
from portal.sessions.models import OperatorSession, UserSession
from portal.sessions.services import (
    Presented,
    operator_session_live,
    presented,
    presented_operator_session,
    presented_session,
    touch_operator_session,
    touch_user_session,
)
from portal.subscriptions.services import preload_entitlements, signed_entitlements
from portal.support import services as support
from portal.support.models import Impersonation
from portal.tenancy.context import load_partner_with
from portal.tenancy.models import Partner
from portal.tenancy.rls import GENERIC_PLAN
from portal.tokens.generation import hash_token
from portal.users.models import User


@dataclass(frozen=True)
class CookieSwap:
    """The auth cookie to send with this response: the agent's own session (`token`) when a
    support session ended and they are back in it, or none at all (`token` None)."""

    token: str | None
    expires: datetime | None = None


def load_partner_and_session(slug: str) -> Partner | None:
    """The host's partner and, in the same statement, the session record the cookie names with
    its user and the entitlements of the user's plan: a page's first statement.

    Runs scoped to the partner's id (`resolving_partner`); the ORM layer and row-level security
    hold the session and the user to it, and the joins say so again.
    """
    token = read_token()
    if token is None:
        return db.session.execute(_partner_only(), {"slug": slug}).scalar_one_or_none()
    params = {"slug": slug, "token_hash": hash_token(token)}
    row = db.session.execute(_partner_and_session(), params).one_or_none()
    if row is None:
        return None
    partner, record, user, entitlements = row
    if record is not None and user is not None:
        set_committed_value(record, "user", user)  # loaded: no second statement for it
        g.presented = (token, presented(partner, record, user=user))
        preload_entitlements(user.id, entitlements)
    return partner


@cache
def _partner_only() -> Select:
    return (
        select(Partner).where(Partner.slug == bindparam("slug")).execution_options(**GENERIC_PLAN)
    )


@cache
def _partner_and_session() -> Select:
    """Built once: each request only binds its host's slug and its cookie's token hash."""
    return (
        select(Partner, UserSession, User, signed_entitlements(User.id))
        .outerjoin(
            UserSession,
            and_(
                UserSession.partner_id == Partner.id,
                UserSession.token_hash == bindparam("token_hash"),
            ),
        )
        .outerjoin(User, and_(User.partner_id == Partner.id, User.id == UserSession.user_id))
        .where(Partner.slug == bindparam("slug"))
        # Unique keys all the way (slug, token hash, user id, the one held subscription): one
        # plan serves every partner (rls.GENERIC_PLAN), where planning it took 1.1 ms a run.
        .execution_options(**GENERIC_PLAN)
    )


def _presented(partner: Partner, token: str) -> Presented | None:
    """The record the cookie names: loaded with the partner when it was resolved, else now."""
    loaded = g.pop("presented", None)
    if loaded is not None and loaded[0] == token and loaded[1].record.partner_id == partner.id:
        return loaded[1]
    return presented_session(partner, token)


def load_principal(_request: Request) -> Any:
    """The user (partner host) or operator (root domain) whose live session the cookie names."""
    token = read_token()
    if token is None:
        return None
    if g.get("on_partner_host"):
        partner = g.get("partner")
        if partner is None:
            return None
        found = _presented(partner, token)
        if found is None:
            return None
        if found.record.impersonator_id is not None:
            return _support_session(partner, found)
        if not found.live:
            _session_over(partner, found)
            return None
        return _signed_in(found)
    operator_record = presented_operator_session(token)
    if operator_record is None:
        return None
    if not operator_session_live(operator_record):
        _operator_session_over(operator_record)
        return None
    touch_operator_session(operator_record)
    g.operator_session = operator_record
    g.principal_ref = f"operator:{operator_record.operator_id}"
    return operator_record.operator


def _session_over(partner: Partner, found: Presented) -> None:
    """The browser presents a session that is over: say why on the page it lands on (the
    sign-in page, for a page that needs one) and forget the cookie, so it is said once."""
    reason = ended_reason(partner, found.record)
    if reason:
        flash(reason, "info")
    g.cookie_swap = CookieSwap(None)


def _operator_session_over(record: OperatorSession) -> None:
    """The same on the root domain, for an operator's session that is over."""
    reason = operator_ended_reason(record)
    if reason:
        flash(reason, "info")
    g.cookie_swap = CookieSwap(None)


def _signed_in(found: Presented) -> Any:
    record = found.record
    touch_user_session(record)
    g.user_session = record
    g.principal_ref = f"user:{record.user_id}"
    return record.user


def _support_session(partner: Partner, found: Presented) -> Any:
    """The user a support agent acts as, while that is still allowed; else the agent back in
    their own session (or nobody, when that ended too)."""
    checked = support.check_impersonation(partner, found)
    imp = checked.impersonation
    if checked.over is None and imp is not None:
        g.impersonation = support.ImpersonationView.of(imp)
        touch_user_session(imp.agent_session)  # the agent is at work: their session stays
        principal = _signed_in(found)
        g.principal_ref = f"user:{imp.target_id} (support user:{imp.agent_id})"
        return principal
    target_email = found.record.user.email
    if imp is not None and support.end_impersonation(
        imp, checked.over, actor=imp.agent, at=checked.at
    ):
        # Committed at once, the one commit outside a view's: the end must be on record
        # whatever this request does next (a login redirect or a refusal never commits).
        unit_of_work.commit()
    own = return_to_own_session(partner, imp)
    flash(support.end_message(checked.over, target_email, returned=own is not None), "info")
    g.impersonation_over = True
    return _signed_in(own) if own is not None else None


def return_to_own_session(partner: Partner, imp: Impersonation | None) -> Presented | None:
    """The agent's own session, from the cookie the browser set aside, when it is theirs and
    still live; this response then puts it back as the auth cookie (or clears both)."""
    own_token = read_return_token()
    own = presented_session(partner, own_token) if own_token else None
    if imp is None or own is None or not support.is_own_session(partner, imp, own):
        g.cookie_swap = CookieSwap(None)
        return None
    expires = own.record.expires_at if own.record.remember else None
    g.cookie_swap = CookieSwap(own_token, expires)
    return own


def swap_cookies(response: Response) -> Response:
    """after_request: send the cookie a support session's end calls for."""
    swap = g.get("cookie_swap")
    if swap is None:
        return response
    if swap.token is None:
        clear_auth_cookie(response)
    else:
        set_auth_cookie(response, swap.token, expires=swap.expires)
    clear_return_cookie(response)
    return response


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = None  # our session records do this job
    login_manager.request_loader(load_principal)
    # Principals never come from Flask's cookie session, only from a session record.
    login_manager.user_loader(lambda _id: None)
    load_partner_with(app, load_partner_and_session)
    app.after_request(swap_cookies)
