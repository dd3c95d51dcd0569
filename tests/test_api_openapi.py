"""The OpenAPI description matches the routes, and the API matches its description.

Schemathesis generates requests from /api/v1/openapi.json (valid and invalid ones) and sends
them to the app in-process: no answer may be a 500, and every answer must conform to the
description (status, headers, content type, body schema).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from apikit import api_client_for, get_token
from conftest import host_client, make_user
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_api_endpoints import _signed

from portal.api.schema import api_rules, openapi_path
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User

BASE = "http://acme.localhost/api/v1"


def test_description_and_routes_agree(app: Flask, acme: Partner) -> None:
    spec = host_client(app, "acme").get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    assert spec["servers"] == [{"url": BASE}]
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routed = {
        (openapi_path(rule), method.lower())
        for rule in api_rules(app)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert described == routed
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            [rule] = [
                r
                for r in api_rules(app)
                if openapi_path(r) == path and method.upper() in (r.methods or ())
            ]
            view = app.view_functions[rule.endpoint]
            assert operation["x-scope"] == view.bearer_scope.value, (path, method)
            assert {"401", "403", "404", "429"} <= set(operation["responses"])
    flows = spec["components"]["securitySchemes"]["client_credentials"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "http://acme.localhost/oauth/token"


def test_developers_page_explains_the_api(app: Flask, acme: Partner) -> None:
    page = host_client(app, "acme").get("/developers")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "http://acme.localhost/oauth/token" not in text  # the examples use $PORTAL
    assert "export PORTAL=http://acme.localhost" in text
    assert "grant_type=client_credentials" in text and "users:write" in text
    assert '"$PORTAL/api/v1/subscriptions"' in text  # starting one for a user
    assert "switched off" in text  # acme has not switched the API on in this test


@pytest.fixture
def api_schema(make_app: Any, data: Flask, acme: Partner, acme_admin: User) -> Any:
    app = make_app(API_LIMIT_PER_CLIENT="100000/minute")
    basic = make_user(acme, "basic@acme.test", role=Role.BASIC)
    make_user(acme, "second@acme.test", role=Role.ADMIN)
    _signed(acme, basic, "free")
    client_id, secret, _ = api_client_for(acme, acme_admin)
    token = get_token(app, "acme", client_id, secret)
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", app, headers={"Host": "acme.localhost"}
    )
    schema.token = token  # type: ignore[attr-defined]
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_description(case: Any, api_schema: Any) -> None:
    case.call_and_validate(
        base_url=BASE,
        headers={"Authorization": f"Bearer {api_schema.token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
