"""Authorization matrix: every partner route x every role x own partner / other partner.

Walks `app.url_map`, so a new route is covered the day it is added. Each route either declares
its permission with `@requires(...)`, or the support capability with `@support_agents_only`,
or is listed here as open to every logged-in user.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import HostClient, across_partners, host_client, logged_in, make_user, set_feature
from flask import Flask
from test_route_walk import PUBLIC_PARTNER_ENDPOINTS, is_bearer, sample_value
from werkzeug.routing import IntegerConverter, Rule

from portal.extensions import db
from portal.features.catalogue import CATALOGUE, Scope
from portal.features.evaluation import evaluate
from portal.roles.models import Role
from portal.roles.permissions import DEFAULT_PERMISSIONS
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope, unscoped
from portal.tokens.generation import hash_token
from portal.users.models import User

ANY_LOGGED_IN_USER = {"home.index", "auth.logout", "support.stop"}


def partner_rules(app: Flask) -> list[tuple[Rule, str]]:
    pairs = []
    for rule in app.url_map.iter_rules():
        if rule.subdomain != "<partner>" or rule.endpoint in PUBLIC_PARTNER_ENDPOINTS:
            continue
        if is_bearer(app, rule.endpoint):  # bearer tokens, not roles: tests/test_api_walk.py
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            pairs.append((rule, method))
    return pairs


def path_for(app: Flask, rule: Rule, slug: str, target_id: int) -> str:
    values = {arg: sample_value(rule, arg, target_id) for arg in rule.arguments if arg != "partner"}
    adapter = app.url_map.bind("localhost", subdomain=slug)
    return adapter.build(rule.endpoint, {**values, "partner": slug})


def snapshot(partner_id: int) -> dict[str, list]:
    """Every row of every table that belongs to `partner_id`."""
    with unscoped():
        state = {}
        for table in db.metadata.sorted_tables:
            if "partner_id" in table.c:
                stmt = (
                    sa.select(table)
                    .where(table.c.partner_id == partner_id)
                    .order_by(*table.primary_key)
                )
                state[table.name] = [tuple(r) for r in db.session.execute(stmt)]
        return state


def signed_in(app: Flask, user: User) -> tuple[HostClient, str]:
    """A client signed in as `user`, and its CSRF token: once per role, not once per route."""
    client = logged_in(app, user)
    return client, client.csrf_token("/")


def session_alive(client: HostClient) -> bool:
    cookie = client.get_cookie("portal_auth", domain="acme.localhost")
    if cookie is None:
        return False
    token = cookie.value
    with unscoped():
        record = db.session.execute(
            sa.select(UserSession).where(UserSession.token_hash == hash_token(token))
        ).scalar_one()
        db.session.refresh(record)
        return record.revoked_at is None


def test_every_route_declares_who_may_use_it(app: Flask) -> None:
    for rule, _method in partner_rules(app):
        view = app.view_functions[rule.endpoint]
        declared = hasattr(view, "required_permission") or hasattr(view, "required_capability")
        assert declared or rule.endpoint in ANY_LOGGED_IN_USER, rule


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_matrix_own_partner(app: Flask, acme: Partner, globex: Partner, role: Role) -> None:
    actor = make_user(acme, f"actor-{role.value}@acme.test", role=role)
    walk_own_partner(app, acme, actor, role)


@pytest.mark.parametrize(
    "role", [Role.GUEST, Role.BASIC, Role.COMPANY], ids=["guest", "basic", "company"]
)
def test_matrix_support_agent(app: Flask, acme: Partner, globex: Partner, role: Role) -> None:
    """A support agent: the support pages open, everything else as their role says."""
    actor = make_user(acme, f"agent-{role.value}@acme.test", role=role, is_support=True)
    walk_own_partner(app, acme, actor, role)


def walk_own_partner(app: Flask, acme: Partner, actor: User, role: Role) -> None:
    make_user(acme, "keeper@acme.test", role=Role.ADMIN)  # never the last admin
    for key, item in CATALOGUE.items():  # every switchable route reachable, so roles decide
        if key != "password_login" and item.scope == Scope.PARTNER:
            set_feature(acme, key, True)
    client, token = signed_in(app, actor)
    for rule, method in partner_rules(app):
        target = make_user(acme, f"t-{rule.endpoint}-{method}@acme.test".lower(), role=Role.GUEST)
        if not session_alive(client):  # the route before signed the actor out (logout)
            client, token = signed_in(app, actor)
        response = client.open(
            path_for(app, rule, "acme", target.id), method=method, headers={"X-CSRFToken": token}
        )
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "required_permission", None)
        allowed = permission is None or permission in DEFAULT_PERMISSIONS[role]
        support_only = getattr(view, "required_capability", None) == "support"
        if support_only:
            allowed = actor.is_support
        label = (rule.endpoint, method, role.value, response.status_code)
        assert response.status_code < 500, label
        key = getattr(view, "required_feature", None)
        with partner_scope(acme):
            feature_off = key is not None and not evaluate(key, db.session.get(User, actor.id)).on
        if feature_off:  # e.g. a plan-gated page for a user whose plan lacks it
            assert response.status_code == 404, label
        elif allowed:
            assert response.status_code != 403, label
            assert not response.headers.get("Location", "").startswith("/login?next"), label
        else:
            assert response.status_code == 403, label
            refusal = "Only support agents" if support_only else "You do not have permission"
            assert refusal in response.text, label


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_matrix_other_partner(app: Flask, acme: Partner, globex: Partner, role: Role) -> None:
    actor = make_user(acme, f"actor-{role.value}@acme.test", role=role)
    globex_target = make_user(globex, "victim@globex.test", role=Role.GUEST)
    make_user(globex, "boss@globex.test", role=Role.ADMIN)
    acme_client = logged_in(app, actor)
    token = acme_client.get_cookie("portal_auth", domain="acme.localhost").value
    before = snapshot(globex.id)
    for rule, method in partner_rules(app):
        # The acme session presented on globex's host: nobody is logged in there.
        intruder = host_client(app, "globex")
        intruder.set_cookie("portal_auth", token, domain="globex.localhost")
        csrf = intruder.csrf_token("/login")
        response = intruder.open(
            path_for(app, rule, "globex", globex_target.id),
            method=method,
            headers={"X-CSRFToken": csrf},
        )
        assert response.status_code == 302, (rule.endpoint, method)
        assert response.headers["Location"].startswith("/login")
        # Globex ids on acme's own host: missing, never another partner's row.
        if any(isinstance(c, IntegerConverter) for c in rule._converters.values()):
            own = acme_client.open(
                path_for(app, rule, "acme", globex_target.id),
                method=method,
                headers={"X-CSRFToken": acme_client.csrf_token("/")},
            )
            assert own.status_code in (403, 404), (rule.endpoint, method, own.status_code)
    assert snapshot(globex.id) == before
    with across_partners():
        assert db.session.get(User, globex_target.id) is not None
