"""Walk `app.url_map`: no answer but a static file may be kept by a browser or a proxy.

Every page carries the visitor's CSRF token (`<body hx-headers>`), most carry someone's data,
some a token in their address, exports a partner's records: all are `Cache-Control: no-store`,
for a partner's admin, for an operator and for an anonymous visitor alike.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from conftest import PASSWORD, HostClient, host_client, logged_in, set_feature
from flask import Flask
from test_route_walk import routes, sample_value
from werkzeug.routing import Rule

from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.features.catalogue import CATALOGUE
from portal.operator.models import Operator
from portal.tenancy.models import Partner
from portal.users.models import User

CACHEABLE = {"static", "partner_static"}  # the same files for everyone, marked @cacheable


def path_for(app: Flask, rule: Rule, values: dict[str, Any]) -> str:
    slug = "acme" if rule.subdomain == "<partner>" else ""
    args = {a: sample_value(rule, a, values.get(a, "1")) for a in rule.arguments if a != "partner"}
    if slug:
        args["partner"] = slug
    return app.url_map.bind("localhost", subdomain=slug).build(rule.endpoint, args)


def walk(client: HostClient, *, partner: bool, values: dict[str, Any]) -> Counter[int]:
    """GET every route of one side, as a page and for htmx; each answer must be no-store."""
    statuses: Counter[int] = Counter()
    for rule in routes(client.application, partner=partner):
        if "GET" not in (rule.methods or ()) or rule.endpoint in CACHEABLE:
            continue
        path = path_for(client.application, rule, values)
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(path, headers=headers)
            cache = response.headers.get("Cache-Control")
            assert cache == "no-store", (rule.endpoint, response.status_code, cache)
        statuses[response.status_code] += 1
    return statuses


def test_every_page_of_a_signed_in_admin_is_no_store(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    for feature in CATALOGUE:
        set_feature(acme, feature, True)
    admin = logged_in(app, acme_admin)
    statuses = walk(admin, partner=True, values={"user_id": acme_admin.id, "token": "x" * 20})
    assert statuses[200] >= 20, statuses  # pages really drawn for the admin, not redirects
    assert admin.get("/account/profile").status_code == 200  # still signed in after the walk


def test_every_page_of_a_signed_in_operator_is_no_store(app: Flask, acme: Partner) -> None:
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    console = host_client(app, None)
    assert console.login("op@portal.test").status_code == 302
    statuses = walk(console, partner=False, values={"partner_id": acme.id})
    assert statuses[200] >= 4, statuses


@pytest.mark.parametrize("slug", [None, "acme"])
def test_anonymous_pages_are_no_store_too(app: Flask, acme: Partner, slug: str | None) -> None:
    """Sign-in, sign-up and token pages carry a CSRF token tied to the visitor's session."""
    walk(host_client(app, slug), partner=slug is not None, values={"token": "x" * 20})


@pytest.mark.parametrize("slug", [None, "acme"])
def test_static_files_may_be_cached(app: Flask, acme: Partner, slug: str | None) -> None:
    response = host_client(app, slug).get("/static/css/portal.css")
    response.close()
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
