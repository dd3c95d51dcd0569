"""Flask-Login integration: the principal comes from the server-side session record."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, g

from portal.auth.cookies import read_token
from portal.extensions import login_manager
from portal.sessions.services import authenticate_operator_session, authenticate_user_session


def load_principal(_request: Request) -> Any:
    """The user (partner host) or operator (root domain) whose live session the cookie names."""
    token = read_token()
    if token is None:
        return None
    if g.get("on_partner_host"):
        partner = g.get("partner")
        if partner is None:
            return None
        record = authenticate_user_session(partner, token)
        if record is None:
            return None
        g.user_session = record
        g.principal_ref = f"user:{record.user_id}"
        return record.user
    operator_record = authenticate_operator_session(token)
    if operator_record is None:
        return None
    g.operator_session = operator_record
    g.principal_ref = f"operator:{operator_record.operator_id}"
    return operator_record.operator


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = None  # our session records do this job
    login_manager.request_loader(load_principal)
    # Principals never come from Flask's cookie session, only from a session record.
    login_manager.user_loader(lambda _id: None)
