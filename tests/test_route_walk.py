"""Walk `app.url_map`: every route needs a login except an explicit public list.

This test grows with every route: a new partner route that forgets its guard fails here.
"""

from __future__ import annotations

import pytest
from conftest import HostClient, host_client
from flask import Flask
from werkzeug.routing import AnyConverter, Rule

from portal.tenancy.models import Partner
from portal.users.models import User

PUBLIC_PARTNER_ENDPOINTS = {
    "auth.login",
    "invitations.accept",
    "health.healthz_partner",
    "health.readyz_partner",
    "account.forgot_password",
    "account.reset_password",
    "account.signup",
    "account.verify_signup",
    "account.confirm_email",
    "sso.start",
    "sso.callback",
    "sso.backchannel_logout",  # the provider's server, with a signed token (test_sso_logout.py)
    "partner_static",
    "branding.logo",
    "oauth.token",
    "oauth.developers",
    "oauth.openapi",
}
PUBLIC_ROOT_ENDPOINTS = {
    "landing.index",
    "operator.login",
    "operator.set_password",  # a signed one-time link (tests/test_operator_password_link.py)
    "monitoring.metrics",  # a bearer token or an allowed network instead (tests/test_ops.py)
    "mail_dev.outbox",
    "health.healthz",
    "health.readyz",
    "static",
}
SAMPLE_ARGS = {"filename": "css/portal.css", "token": "x" * 20, "id": "1", "user_id": "1"}


def sample_value(rule: Rule, arg: str, default: object) -> object:
    """A value the rule's converter accepts for `arg` (the first choice of an `any(...)`)."""
    converter = rule._converters[arg]
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    return default


def sample_path(app: Flask, rule: Rule) -> str:
    """A concrete path for `rule`, built by the URL map itself."""
    slug = "acme" if rule.subdomain == "<partner>" else ""
    values = {
        arg: sample_value(rule, arg, SAMPLE_ARGS.get(arg, "1"))
        for arg in rule.arguments
        if arg != "partner"
    }
    if slug:
        values["partner"] = slug
    adapter = app.url_map.bind("localhost", subdomain=slug)
    return adapter.build(rule.endpoint, values, force_external=False)


def routes(app: Flask, *, partner: bool) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if (r.subdomain == "<partner>") is partner]


def is_bearer(app: Flask, endpoint: str) -> bool:
    """A partner API view: a bearer token instead of a sign-in (walked in test_api_walk.py)."""
    return getattr(app.view_functions[endpoint], "bearer_scope", None) is not None


def requests_for(rule: Rule) -> list[str]:
    return sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS"))


def assert_needs_login(client: HostClient, rule: Rule) -> None:
    token = client.csrf_token("/login")
    path = sample_path(client.application, rule)
    for method in requests_for(rule):
        response = client.open(path, method=method, headers={"X-CSRFToken": token})
        assert response.status_code == 302, (rule.endpoint, method, response.status_code)
        assert response.headers["Location"].startswith("/login"), rule.endpoint
        hx = client.open(path, method=method, headers={"X-CSRFToken": token, "HX-Request": "true"})
        assert hx.status_code == 401 and hx.headers["HX-Redirect"].startswith("/login")


def test_public_lists_match_the_marked_views(app: Flask) -> None:
    public = {e for e, view in app.view_functions.items() if getattr(view, "is_public", False)}
    assert public == PUBLIC_PARTNER_ENDPOINTS | PUBLIC_ROOT_ENDPOINTS


def test_every_partner_route_requires_login(app: Flask, acme: Partner) -> None:
    client = host_client(app, "acme")
    walked = 0
    for rule in routes(app, partner=True):
        if rule.endpoint in PUBLIC_PARTNER_ENDPOINTS or is_bearer(app, rule.endpoint):
            continue
        assert_needs_login(client, rule)
        walked += 1
    assert walked >= 2


def test_every_root_route_requires_an_operator(app: Flask, acme: Partner) -> None:
    client = host_client(app, None)
    for rule in routes(app, partner=False):
        if rule.endpoint not in PUBLIC_ROOT_ENDPOINTS:
            assert_needs_login(client, rule)


def test_partner_user_is_no_operator(app: Flask, acme: Partner, acme_user: User) -> None:
    """A logged-in partner user gets nothing on the root domain's protected routes."""
    client = host_client(app, "acme")
    client.login("alice@acme.test")
    root = host_client(app, None)
    token = client.get_cookie("portal_auth", domain="acme.localhost").value
    root.set_cookie("portal_auth", token, domain="localhost")
    for rule in routes(app, partner=False):
        if rule.endpoint not in PUBLIC_ROOT_ENDPOINTS:
            assert_needs_login(root, rule)


@pytest.mark.parametrize("endpoint", sorted(PUBLIC_PARTNER_ENDPOINTS))
def test_public_partner_routes_answer_anonymously(app: Flask, acme: Partner, endpoint: str) -> None:
    [rule] = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    client = host_client(app, "acme")
    if "GET" in (rule.methods or ()):
        response = client.get(sample_path(app, rule))
    else:  # a form's target (leaving for single sign-on), posted as the form would
        response = client.post_form(sample_path(app, rule))
    response.close()  # static files are streamed from disk
    # Reachable without a login: the page itself answers (a sample token may be invalid: 404).
    assert response.status_code in (200, 404)
    assert "Location" not in response.headers


def test_the_operator_set_password_link_answers_anonymously(app: Flask) -> None:
    """The one public root route with an argument: a sample link is simply not valid."""
    [rule] = [r for r in app.url_map.iter_rules() if r.endpoint == "operator.set_password"]
    response = host_client(app, None).get(sample_path(app, rule))
    assert response.status_code == 404 and "invalid or has expired" in response.text
    assert "Location" not in response.headers
