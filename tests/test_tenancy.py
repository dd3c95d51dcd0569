"""Host resolution: root domain, partner subdomains, and everything that must be refused."""

from __future__ import annotations

import pytest
from conftest import host_client
from flask import Flask

from portal.extensions import db
from portal.tenancy.models import Partner, PartnerStatus, slug_problem


def get(app: Flask, host: str, path: str = "/login"):
    # The Host header exactly as sent (the test client would lowercase a base_url).
    return app.test_client().get(
        path, base_url=f"http://{host}", environ_overrides={"HTTP_HOST": host}
    )


def test_root_domain_serves_landing_and_operator_login(app: Flask, acme: Partner) -> None:
    landing = get(app, "localhost", "/")
    assert landing.status_code == 200
    assert "Partner Portal" in landing.text
    assert "Acme Corp" not in landing.text
    login = get(app, "localhost", "/login")
    assert login.status_code == 200
    assert "Operator console" in login.text


@pytest.mark.parametrize("slug,name", [("acme", "Acme Corp"), ("globex", "Globex")])
def test_each_partner_host_serves_its_own_portal(
    app: Flask, acme: Partner, globex: Partner, slug: str, name: str
) -> None:
    page = get(app, f"{slug}.localhost")
    assert page.status_code == 200
    assert f"Sign in to {name}" in page.text
    other = "Globex" if slug == "acme" else "Acme Corp"
    assert other not in page.text


@pytest.mark.parametrize(
    "host",
    [
        "unknown.localhost",  # no such partner
        "a.b.localhost",  # malformed: dotted
        "ACME.localhost",  # malformed: uppercase
        "-acme.localhost",  # malformed: leading hyphen
        "ac--me.localhost",  # malformed: double hyphen
        "a.localhost",  # malformed: too short
        "www.localhost",  # reserved
        "api.localhost",  # reserved
        "static.localhost",  # reserved
    ],
)
def test_unknown_malformed_and_reserved_slugs_are_404(app: Flask, acme: Partner, host: str) -> None:
    page = get(app, host)
    assert page.status_code == 404
    assert "Acme Corp" not in page.text
    assert "Page not found" in page.text


@pytest.mark.parametrize("host", ["evil.example", "acme.localhost.evil.example", "localhostx"])
def test_foreign_hosts_are_refused(app: Flask, acme: Partner, host: str) -> None:
    page = get(app, host)
    assert page.status_code in (400, 404)
    assert "Acme Corp" not in page.text
    assert "Traceback" not in page.text


@pytest.mark.parametrize("hx", [False, True])
def test_a_refused_host_is_not_repeated_back(app: Flask, acme: Partner, hx: bool) -> None:
    host = "<script>alert(1)</script>.evil"
    page = app.test_client().get(
        "/login",
        headers={"HX-Request": "true"} if hx else {},
        environ_overrides={"HTTP_HOST": host},  # exactly as sent
    )
    assert page.status_code == 400
    assert page.mimetype == "text/plain"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.text == "This address is not served here."
    assert "<script>" not in page.text and "alert" not in page.text


def test_suspended_partner_shows_unavailable_page(app: Flask, acme: Partner) -> None:
    acme.status = PartnerStatus.SUSPENDED
    db.session.commit()
    page = get(app, "acme.localhost", "/")
    assert page.status_code == 403
    assert "Acme Corp is unavailable" in page.text
    assert "Sign in" not in page.text
    assert get(app, "acme.localhost", "/login").status_code == 403


def test_partner_urls_need_no_partner_argument(app: Flask, acme: Partner) -> None:
    client = host_client(app, "acme")
    page = client.get("/")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login")


@pytest.mark.parametrize(
    "slug,ok",
    [
        ("acme", True),
        ("a1", True),
        ("big-corp-2", True),
        ("a", False),
        ("A1", False),
        ("a_b", False),
        ("a-", False),
        ("x" * 41, False),
        ("www", False),
        ("operator", False),
    ],
)
def test_slug_rules(slug: str, ok: bool) -> None:
    assert (slug_problem(slug) is None) is ok
