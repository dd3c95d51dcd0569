"""Health probes on every host, and clear pages (never a stack trace) when things go wrong."""

from __future__ import annotations

import pytest
from conftest import host_client, logged_in
from flask import Flask

from portal.tenancy.models import Partner


@pytest.mark.parametrize("slug", [None, "acme", "nonexistent"])
def test_healthz_and_readyz_answer_on_every_host(app: Flask, acme: Partner, slug) -> None:
    client = host_client(app, slug)
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "database": "ok", "ratelimit": "memory"}


def test_readyz_and_pages_answer_503_while_the_database_is_down(
    make_app, data: Flask, tmp_path
) -> None:
    down = make_app(
        fresh=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/db.sqlite3"
    )
    root = host_client(down, None)
    assert root.get("/healthz").status_code == 200
    ready = root.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["database"] == "unreachable"
    page = host_client(down, "acme").get("/login")
    assert page.status_code == 503
    assert "Temporarily unavailable" in page.text
    assert "Traceback" not in page.text


def test_unknown_page_is_a_clear_404(acme_client) -> None:
    page = acme_client.get("/no/such/page")
    assert page.status_code == 404
    assert "Page not found" in page.text


def test_htmx_errors_are_short_messages(acme_client) -> None:
    response = acme_client.get("/no/such/page", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert "<html" not in response.text


def test_every_response_carries_a_request_id(acme_client) -> None:
    first = acme_client.get("/login").headers["X-Request-ID"]
    second = acme_client.get("/login").headers["X-Request-ID"]
    assert first != second
    echoed = acme_client.get("/login", headers={"X-Request-ID": "trace-abc-12345"})
    assert echoed.headers["X-Request-ID"] == "trace-abc-12345"
    forged = acme_client.get("/login", headers={"X-Request-ID": "<script>"})
    assert forged.headers["X-Request-ID"] != "<script>"


def test_a_value_the_database_refuses_is_a_clear_400(make_app, data) -> None:
    """Defence in depth behind the input parsing: never a 500 for a refused value."""
    from sqlalchemy.exc import DataError

    from portal.auth.guards import public

    app = make_app(fresh=True)

    @public
    def refused():
        raise DataError("SELECT 1", {}, ValueError("integer out of range"))

    app.add_url_rule("/refused", view_func=refused)
    response = app.test_client().get("/refused", headers={"Host": "localhost"})
    assert response.status_code == 400
    assert "out of range or malformed" in response.text
    assert "Traceback" not in response.text and "SELECT" not in response.text


def test_security_headers_on_pages_errors_and_htmx(app: Flask, acme: Partner, acme_user) -> None:
    visitor = host_client(app, "acme")
    user = logged_in(app, acme_user)
    for response in (
        visitor.get("/login"),
        visitor.get("/no-such-page"),
        user.get("/"),
        user.get("/no-such-page", headers={"HX-Request": "1"}),
        host_client(app, None).get("/"),
    ):
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers  # development: plain http
    # Pages whose address carries a token keep their stricter referrer policy.
    for token_page in ("/password/reset/not-a-token", "/invite/not-a-token"):
        assert visitor.get(token_page).headers["Referrer-Policy"] == "no-referrer"


def test_production_adds_hsts(make_app, acme: Partner) -> None:
    prod = make_app(PORTAL_ENV="production")
    response = prod.test_client().get("/login", base_url="https://acme.localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
