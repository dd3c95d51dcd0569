"""End to end in the system Chromium, as after `make run`: the development server with its
demo identity provider at /dev/idp, seeded; a newcomer signs in to Acme with single sign-on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import rows
from flask import Flask
from werkzeug.serving import make_server

from portal.sessions.models import LoginMethod, UserSession
from portal.users.models import User

pytestmark = pytest.mark.browser


@pytest.fixture
def development_server(make_app: Any, data: Flask) -> Iterator[str]:
    """The development app (demo provider mounted) on a free port, seeded like `make run`."""
    server = make_server("127.0.0.1", 0, lambda environ, start: [], threaded=True)
    port = server.server_port
    app = make_app(fresh=True, PORTAL_ENV="development", SERVER_NAME=f"localhost:{port}")
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    server.app = app  # the port had to be known before the app (the provider's issuer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"localhost:{port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def test_a_newcomer_signs_in_through_the_demo_provider(development_server: str, page: Any) -> None:
    page.goto(f"http://acme.{development_server}/login")
    page.click("text=Sign in with Acme Demo ID")
    page.wait_for_url("**/dev/idp/authorize?**")
    assert page.locator("h1").inner_text() == "Demo identity provider"
    page.click("text=Nia Newcomer")
    page.wait_for_url(f"http://acme.{development_server}/")
    assert "Nia Newcomer" in page.content()
    page.goto(f"http://acme.{development_server}/account/identities/")
    assert "new.person@acme.test" in page.locator("#identities").inner_text()
    [user] = rows(User, email="new.person@acme.test")
    [session] = rows(UserSession, user_id=user.id)
    assert session.login_method == LoginMethod.OIDC and user.password_hash is None


def test_an_outsider_is_told_why_in_the_portals_colours(development_server: str, page: Any) -> None:
    page.goto(f"http://acme.{development_server}/login")
    page.click("text=Sign in with Acme Demo ID")
    page.click("text=Oscar Outsider")
    page.wait_for_url(f"http://acme.{development_server}/sso/callback?**")
    assert page.locator("h1").inner_text() == "Sign-in did not work"
    assert "Accounts at example.org cannot sign in" in page.locator("#sso-error").inner_text()
    assert "Acme Corp" in page.locator("header").first.inner_text()
