"""Walk every /api/v1 route of the URL map: a new endpoint is covered the day it is added.

Each one needs a bearer token of its own partner (a cookie session, another partner's token or
none get 401), the scope it declares (403 otherwise), answers in the one error shape, and
treats another partner's ids as missing without writing anything.
"""

from __future__ import annotations

from typing import Any

import pytest
from apikit import Api, api_client_for, bearer, error_code, get_token
from conftest import host_client, logged_in, make_user
from flask import Flask
from test_authz_matrix import snapshot
from werkzeug.routing import IntegerConverter, Rule

from portal.api.models import Scope
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User


def api_rules(app: Flask) -> list[tuple[Rule, str]]:
    pairs = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "bearer_scope", None) is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            pairs.append((rule, method))
    return pairs


def path_for(app: Flask, rule: Rule, slug: str | None, target: int) -> str:
    values: dict[str, Any] = {arg: target for arg in rule.arguments if arg != "partner"}
    adapter = app.url_map.bind("localhost", subdomain=slug or "acme")
    return adapter.build(rule.endpoint, {**values, "partner": slug or "acme"})


def call(http: Any, rule: Rule, method: str, path: str, headers: dict[str, str]) -> Any:
    body = {"role": "advanced", "email": "walk@acme.test", "action": "suspend", "reason": "walk"}
    return http.open(path, method=method, json=body if method == "POST" else None, headers=headers)


def test_every_api_route_is_walked(app: Flask) -> None:
    endpoints = {rule.endpoint for rule, _ in api_rules(app)}
    assert len(endpoints) >= 15
    assert all(e.startswith("api.") for e in endpoints)


@pytest.fixture
def setup(app: Flask, acme: Partner, globex: Partner, acme_admin: User) -> dict[str, Any]:
    g_admin = make_user(globex, "admin@globex.test", role=Role.ADMIN)
    g_user = make_user(globex, "victim@globex.test", role=Role.BASIC)
    client_id, secret, _ = api_client_for(acme, acme_admin)
    api_client_for(globex, g_admin)
    return {
        "token": get_token(app, "acme", client_id, secret),
        "client": (client_id, secret),
        "target": g_user.id,
    }


def test_no_token_a_cookie_or_another_partners_token_is_401(
    app: Flask, acme: Partner, acme_admin: User, setup: dict[str, Any]
) -> None:
    anonymous = host_client(app, "acme")
    signed_in = logged_in(app, acme_admin)
    csrf = signed_in.csrf_token("/")
    on_globex = host_client(app, "globex")
    for rule, method in api_rules(app):
        label = (rule.endpoint, method)
        path = path_for(app, rule, "acme", 1)
        for response in (
            call(anonymous, rule, method, path, {}),
            call(signed_in, rule, method, path, {"X-CSRFToken": csrf}),
            call(on_globex, rule, method, path_for(app, rule, "globex", 1), bearer(setup["token"])),
        ):
            assert response.status_code == 401, (*label, response.status_code)
            assert error_code(response) == "unauthorized", label
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), label
            assert response.headers["Cache-Control"] == "no-store", label


def test_each_route_needs_its_scope(app: Flask, acme: Partner, acme_admin: User) -> None:
    for scope in Scope:
        others = [s.value for s in Scope if s != scope]
        client_id, secret, _ = api_client_for(acme, acme_admin, others, name=f"no {scope.value}")
        token = get_token(app, "acme", client_id, secret)
        http = host_client(app, "acme")
        for rule, method in api_rules(app):
            if app.view_functions[rule.endpoint].bearer_scope != scope:
                continue
            response = call(http, rule, method, path_for(app, rule, "acme", 1), bearer(token))
            assert response.status_code == 403, (rule.endpoint, scope.value)
            assert error_code(response) == "insufficient_scope"


def test_another_partners_ids_are_404_and_nothing_changes(
    app: Flask, acme: Partner, globex: Partner, setup: dict[str, Any]
) -> None:
    api = Api(app, "acme", setup["token"])
    before = snapshot(globex.id)
    walked = 0
    for rule, method in api_rules(app):
        if not any(isinstance(c, IntegerConverter) for c in rule._converters.values()):
            continue
        path = path_for(app, rule, "acme", setup["target"])
        response = call(api.http, rule, method, path, bearer(setup["token"]))
        assert response.status_code == 404, (rule.endpoint, method, response.status_code)
        assert error_code(response) == "not_found"
        walked += 1
    assert walked >= 9
    assert snapshot(globex.id) == before
